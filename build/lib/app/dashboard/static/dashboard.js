// Live parts of the dashboard: an element with data-live="URL" holds a server-rendered
// fragment whose root says data-active="true" while a run is queued or running. While it
// does, the fragment is fetched again every few seconds and swapped in. When it stops being
// active, pages marked data-reload-when-done reload to show what the run produced.
"use strict";

const POLL_MS = 2000;

function isActive(container) {
  const root = container.querySelector(".live-root");
  return root !== null && root.dataset.active === "true";
}

async function poll(container) {
  const wasActive = isActive(container);
  if (!wasActive) return;
  try {
    const answer = await fetch(container.dataset.live, { credentials: "same-origin", cache: "no-store" });
    if (answer.redirected || answer.status === 401) { window.location.reload(); return; }
    if (answer.ok) container.innerHTML = await answer.text();
  } catch (error) {
    // The server restarting or the network dropping: try again on the next tick.
  }
  if (!isActive(container) && container.dataset.reloadWhenDone === "true") {
    window.location.reload();
    return;
  }
  window.setTimeout(() => poll(container), POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const container of document.querySelectorAll("[data-live]")) {
    window.setTimeout(() => poll(container), POLL_MS);
  }
  // Promoting a model the gate rejected deserves a second thought.
  for (const form of document.querySelectorAll("form.confirm")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
