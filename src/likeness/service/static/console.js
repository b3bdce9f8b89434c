// likeness console: live job progress (Server-Sent Events) and upload feedback. No framework.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const card = document.querySelector("[data-job-events]");
  if (card && "EventSource" in window) {
    const state = card.querySelector("[data-job-state]");
    const message = card.querySelector("[data-job-message]");
    const progress = card.querySelector("[data-job-progress]");
    const attempts = card.querySelector("[data-job-attempts]");
    const releases = card.querySelector("[data-job-releases]");
    const labels = state && state.dataset.labels ? JSON.parse(state.dataset.labels) : {};
    // Training previews and the plot are rewritten as the job runs: reload them with its progress.
    const live = document.querySelectorAll("[data-live-image]");
    live.forEach((img) => {
      img.dataset.base = img.getAttribute("src");
      img.addEventListener("load", () => { img.hidden = false; });
      img.addEventListener("error", () => { img.hidden = true; });
    });
    const source = new EventSource(card.dataset.jobEvents);
    source.addEventListener("job", (event) => {
      const job = JSON.parse(event.data);
      live.forEach((img) => { img.src = img.dataset.base + "?at=" + encodeURIComponent(job.updated_at); });
      if (progress) progress.value = job.progress;
      if (message) message.textContent = job.message === job.state ? "" : job.message;
      if (attempts) attempts.textContent = job.attempts;
      if (releases && job.releases > 0) {
        releases.textContent = job.releases === 1
          ? releases.dataset.once
          : releases.dataset.many.replace("{count}", job.releases);
        releases.hidden = false;
      }
      if (state) {
        state.className = "state " + job.state;
        state.textContent = labels[job.state] || job.state;
      }
    });
    source.addEventListener("end", () => { source.close(); window.location.reload(); });
  }

  document.querySelectorAll("[data-upload-form]").forEach((form) => {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.setAttribute("aria-busy", "true"); }
    });
  });
});
