// Live progress of packaging jobs on the version page: poll the jobs API while any job is
// queued or running, and update the rows in place; when a job finishes, reload the page so its
// result (downloads, parity, the formats table) shows. Plain JavaScript; without it the page
// shows the state at load time.
(function () {
  "use strict";
  var section = document.getElementById("jobs");
  if (!section) return;
  var url = section.getAttribute("data-jobs-url");

  function active() {
    var cells = section.querySelectorAll(".job-status");
    for (var i = 0; i < cells.length; i++) {
      if (cells[i].textContent === "queued" || cells[i].textContent === "running") return true;
    }
    return false;
  }

  function refresh() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var finished = false;
        data.results.forEach(function (job) {
          var row = section.querySelector('tr[data-job="' + job.id + '"]');
          if (!row) { window.location.reload(); return; }
          var status = row.querySelector(".job-status");
          var was = status.textContent;
          if ((was === "queued" || was === "running") && job.status !== "queued" &&
              job.status !== "running") { finished = true; }
          status.textContent = job.status;
          var bar = row.querySelector(".job-progress");
          bar.value = job.progress; bar.textContent = job.progress + "%";
          row.querySelector(".job-step").textContent = job.error || job.step;
        });
        if (finished) { window.location.reload(); return; }
        if (active()) setTimeout(refresh, 2000);
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }

  if (active()) setTimeout(refresh, 1000);
})();
