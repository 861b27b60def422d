# make run: install everything into .venv and serve the app at http://127.0.0.1:5000
# make test: install everything into .venv, lint, and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test translations format clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# One process (its analysis workers are threads, WORKERS of them); threads answer pages while videos are analysed.
run: install
	$(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

# After changing a page's text: collect the strings, merge them into each language, compile.
translations: install
	$(BIN)/pybabel extract -F babel.cfg --ignore-dirs=".venv tests" -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations --width 120
	$(BIN)/pybabel compile -d translations

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
