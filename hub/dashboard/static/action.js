// Action-link page: submit the chosen action at once. The action runs on this POST, never on the link's GET,
// so a messenger's link preview (which does not run scripts) cannot acknowledge an alert nobody has read.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("act");
  if (form && form.dataset.auto === "1") {
    form.querySelector("button")?.setAttribute("disabled", "");
    form.submit();
  }
});
