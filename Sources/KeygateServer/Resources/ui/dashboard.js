// Keygate dashboard: the only script. Pages work without it; it adds live progress to the
// allowlist CSV upload (upload progress, then the import's progress polled every half second).
"use strict";
(function () {
  const form = document.getElementById("import-form");
  if (!form) return;
  const bar = document.getElementById("import-progress");
  const status = document.getElementById("import-status");
  form.addEventListener("submit", function (event) {
    if (!window.FormData || !window.XMLHttpRequest) return;
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    const data = new FormData(form);
    const file = form.querySelector("input[type=file]").files[0];
    if (file) data.append("fileName", file.name);
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    bar.hidden = false;
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 20);
        status.textContent = "Uploading… " + Math.round((e.loaded / e.total) * 100) + " %";
      }
    });
    request.addEventListener("load", function () {
      let answer = null;
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = null; }
      if (request.status !== 200 || !answer || !answer.job) {
        // The server answered with a page (an error): show it as it is.
        document.open(); document.write(request.responseText); document.close();
        return;
      }
      poll(answer.href);
    });
    request.addEventListener("error", function () {
      status.textContent = "The upload failed; try again.";
      if (button) button.disabled = false;
    });
    request.send(data);
  });
  function poll(href) {
    fetch(href + "?format=json", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        const share = job.total === 0 ? 1 : job.processed / job.total;
        bar.value = 20 + Math.round(share * 80);
        status.textContent = "Imported " + job.processed + " of " + job.total + " lines" +
          (job.errors ? " (" + job.errors + " refused)" : "") + "…";
        if (job.finished) { window.location.href = href; } else { setTimeout(function () { poll(href); }, 500); }
      })
      .catch(function () { window.location.href = href; });
  }
})();
