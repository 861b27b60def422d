"""The Azure Custom Vision backend: a mocked SDK client, and the real SDK against a fake HTTP service."""

from __future__ import annotations

import time

import numpy as np
import pytest

from config import Settings
from custom_vision import (
    AZURE_MAX_IMAGE_BYTES,
    DEEPFAKE,
    REAL,
    AzureClassifier,
    ClassifierError,
    RateLimiter,
    jpeg_under,
    make_classifier,
)

from .conftest import azure_settings, azure_with, predictions_response

CROP = np.full((64, 48, 3), 128, dtype=np.uint8)


@pytest.fixture
def classifier_for():
    """make_classifier, with the SDK clients it makes closed after the test."""
    made = []

    def make(settings: Settings) -> AzureClassifier:
        made.append(make_classifier(settings))
        return made[-1]

    yield make
    for classifier in made:
        classifier.close()


def test_mocked_client_answers_per_tag_probabilities_through_the_no_store_call(mock_prediction_client):
    predictions = azure_with(mock_prediction_client).classify([CROP, CROP])
    assert [prediction.probabilities for prediction in predictions] == [{DEEPFAKE: 0.8, REAL: pytest.approx(0.2)}] * 2
    assert mock_prediction_client.classify_image_with_no_store.call_count == 2
    mock_prediction_client.classify_image.assert_not_called()
    project, published, data = mock_prediction_client.classify_image_with_no_store.call_args.args
    assert (project, published) == ("project", "published")
    assert data[:2] == b"\xff\xd8"  # a JPEG


def test_the_project_tag_names_are_mapped_to_the_canonical_tags(mock_prediction_client):
    mock_prediction_client.classify_image_with_no_store.return_value.predictions[0].tag_name = "fake"
    mock_prediction_client.classify_image_with_no_store.return_value.predictions[1].tag_name = "real"
    classifier = AzureClassifier(mock_prediction_client, "p", "n", deepfake_tag="fake", real_tag="real")
    assert classifier.classify([CROP])[0].probabilities == {DEEPFAKE: 0.8, REAL: pytest.approx(0.2)}


def test_real_sdk_success_uses_the_no_store_url_with_the_key(fake_azure, classifier_for):
    classifier = classifier_for(azure_settings(fake_azure))
    predictions = classifier.classify([CROP, CROP, CROP])
    assert [prediction.deepfake_probability for prediction in predictions] == [0.9] * 3
    assert len(fake_azure.requests) == 3
    request = fake_azure.requests[0]
    assert (
        request.path
        == f"/customvision/v3.1/prediction/{fake_azure.project_id}/classify/iterations/Iteration1/image/nostore"
    )
    assert request.key == "test-key"
    assert request.content_type.startswith("multipart/form-data")
    assert b"\xff\xd8" in request.body


def test_storing_predictions_is_an_opt_in(fake_azure, classifier_for):
    classifier = classifier_for(azure_settings(fake_azure, STORE_PREDICTION_IMAGES="true"))
    classifier.classify([CROP])
    assert fake_azure.requests[0].path.endswith("/classify/iterations/Iteration1/image")


def test_429_waits_for_retry_after_then_succeeds(fake_azure, classifier_for):
    fake_azure.fail_next(429, times=2, headers={"Retry-After": "0"})
    predictions = classifier_for(azure_settings(fake_azure)).classify([CROP])
    assert predictions[0].deepfake_probability == 0.9
    assert len(fake_azure.requests) == 3


def test_429_retry_after_is_honoured():
    waits = []
    client = _failing_client(429, headers={"Retry-After": "7"})
    classifier = AzureClassifier(client, "p", "n", max_retries=1, sleep=waits.append, max_tps=1000)
    with pytest.raises(ClassifierError, match="429"):
        classifier.classify([CROP])
    assert 7.0 in waits


def test_500_is_retried_a_bounded_number_of_times(fake_azure, classifier_for):
    fake_azure.fail_next(500, times=2)
    assert classifier_for(azure_settings(fake_azure)).classify([CROP])[0].deepfake_probability == 0.9
    fake_azure.fail_next(503, times=10)
    with pytest.raises(ClassifierError, match=r"HTTP 503\) after 3 tries"):
        classifier_for(azure_settings(fake_azure, AZURE_MAX_RETRIES=2)).classify([CROP])


def test_a_wrong_key_stops_at_once_with_a_clear_error(fake_azure, classifier_for):
    settings = azure_settings(fake_azure, VISION_PREDICTION_KEY="wrong")
    with pytest.raises(ClassifierError, match="Azure rejected the prediction key"):
        classifier_for(settings).classify([CROP, CROP])
    assert len(fake_azure.requests) <= 2  # no retries


def test_an_unknown_project_or_iteration_says_so(fake_azure, classifier_for):
    with pytest.raises(ClassifierError, match="project or published iteration not found"):
        classifier_for(azure_settings(fake_azure, VISION_PUBLISHED_NAME="Nope")).classify([CROP])


def test_an_unreachable_endpoint_fails_after_bounded_retries(classifier_for):
    settings = Settings.from_mapping(
        {
            "VISION_PREDICTION_ENDPOINT": "http://127.0.0.1:9",
            "VISION_PREDICTION_KEY": "k",
            "VISION_PROJECT_ID": "p",
            "VISION_PUBLISHED_NAME": "n",
            "AZURE_MAX_RETRIES": 1,
            "AZURE_RETRY_BACKOFF_S": 0,
        }
    )
    with pytest.raises(ClassifierError, match="did not answer after 2 tries"):
        classifier_for(settings).classify([CROP])


def test_requests_run_concurrently_but_at_most_max_tps_per_second(fake_azure, classifier_for):
    classifier = classifier_for(azure_settings(fake_azure, AZURE_MAX_TPS=20))
    started = time.monotonic()
    classifier.classify([CROP] * 11)
    assert time.monotonic() - started >= 0.5  # 11 starts, 1/20 s apart
    assert len(fake_azure.requests) == 11


def test_rate_limiter_spaces_calls():
    now = [0.0]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert sleeps == [0.5, 0.5]


def test_a_crop_over_4_mb_is_re_encoded_smaller():
    noise = np.random.default_rng(0).integers(0, 256, size=(2500, 2500, 3), dtype=np.uint8)
    data = jpeg_under(noise, AZURE_MAX_IMAGE_BYTES)
    assert len(data) <= AZURE_MAX_IMAGE_BYTES and data[:2] == b"\xff\xd8"


def test_choosing_azure_without_its_settings_says_what_is_missing():
    with pytest.raises(ClassifierError, match="VISION_PREDICTION_ENDPOINT"):
        make_classifier(Settings(classifier="azure"))


def test_auto_picks_azure_only_when_all_four_settings_are_present(fake_azure, classifier_for, tmp_path):
    assert classifier_for(azure_settings(fake_azure)).name == "azure"
    partial = Settings(
        vision_prediction_endpoint="http://x", vision_prediction_key="k", local_model=str(tmp_path / "none.keras")
    )
    with pytest.raises(ClassifierError, match="local model"):  # it went for the local model, not Azure
        make_classifier(partial)
    assert make_classifier(Settings(vision_prediction_endpoint="http://x", vision_prediction_key="k")).name == "local"


def _failing_client(status, headers=None):
    from unittest import mock

    response = mock.Mock(status_code=status, headers=headers or {})
    error = RuntimeError("HTTP error")
    error.response = response
    client = mock.Mock()
    client.classify_image_with_no_store.side_effect = error
    client.classify_image_with_no_store.return_value = predictions_response(0.5)
    return client
