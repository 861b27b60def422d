// Follows an analysis through the API and reloads the page (which then shows the result) when it ends.
(function () {
  "use strict";
  var section = document.getElementById("job");
  if (!section) return;
  var stages = JSON.parse(section.dataset.stages);
  var bar = document.getElementById("progress");
  var stage = document.getElementById("stage");
  var frames = document.getElementById("frames");

  function poll() {
    fetch(section.dataset.statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        if (job.status === "done" || job.status === "failed") {
          window.location.reload();
          return;
        }
        bar.value = job.progress;
        bar.textContent = Math.round(job.progress * 100) + "%";
        var key = job.stage || job.status;
        stage.textContent = stages[key] || key;
        if (job.stage === "downloading") {
          frames.textContent = job.frames_done + (job.frames_total ? " / " + job.frames_total : "") + " " + section.dataset.megabytesLabel;
        } else frames.textContent = job.frames_total && section.dataset.framesLabel ? job.frames_done + " / " + job.frames_total + " " + section.dataset.framesLabel : "";
        window.setTimeout(poll, 700);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
