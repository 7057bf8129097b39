// The pipeline page's live progress: every running job's row follows the API's job stream (Server-Sent
// Events, opened with the stream token the page was rendered with), and a job's end refreshes the page's
// live part (its next jobs, gates and branches). Text goes in with textContent only: nothing is parsed as HTML.
(function () {
  "use strict";
  var sources = new Map();

  function update(jobId, data) {
    var row = document.getElementById("job-" + jobId);
    if (!row) { return; }
    var status = row.querySelector(".job-status");
    var progress = row.querySelector("progress");
    var percent = row.querySelector(".job-progress");
    var message = row.querySelector(".job-message");
    if (status && data.status) { status.textContent = data.status; }
    if (typeof data.progress === "number") {
      if (progress) { progress.value = data.progress; progress.textContent = data.progress + "%"; }
      if (percent) { percent.textContent = String(data.progress); }
    }
    if (message && (data.errorMessage || data.message)) { message.textContent = data.errorMessage || data.message; }
  }

  function follow() {
    var rows = document.querySelectorAll("tr[data-stream]");
    var seen = new Set();
    rows.forEach(function (row) {
      var jobId = row.id.replace(/^job-/, "");
      seen.add(jobId);
      if (sources.has(jobId) || typeof EventSource === "undefined") { return; }
      var source = new EventSource(row.getAttribute("data-stream"));
      sources.set(jobId, source);
      source.addEventListener("progress", function (event) { update(jobId, JSON.parse(event.data)); });
      source.addEventListener("end", function (event) {
        update(jobId, JSON.parse(event.data));
        source.close();
        sources.delete(jobId);
        var live = document.getElementById("live");
        if (live && window.htmx) { window.htmx.trigger(live, "refresh"); }
      });
      // A dropped stream whose token has expired cannot reopen: the next refresh brings a new token.
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED) { sources.delete(jobId); }
      };
    });
    sources.forEach(function (source, jobId) {
      if (!seen.has(jobId)) { source.close(); sources.delete(jobId); }
    });
  }

  document.addEventListener("DOMContentLoaded", follow);
  document.addEventListener("htmx:afterSwap", follow);
})();
