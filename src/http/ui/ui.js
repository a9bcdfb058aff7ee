// The few lines of JavaScript the pages use besides the editor bundle: copy buttons, and the
// negotiation page's poll, which reloads the page only when the state or the events change.
// Everything works without it (the snippet can be selected by hand; the page refreshes itself).
const poll = document.querySelector('meta[name="agora-poll"]');
if (poll) {
  const seen = `${poll.dataset.state}/${poll.dataset.events}`;
  const check = async () => {
    try {
      const answer = await fetch(poll.content, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const status = await answer.json();
        if (`${status.state}/${status.events}` !== seen) {
          window.location.reload();
          return;
        }
      }
    } catch {
      // The node is briefly unreachable: try again.
    }
    setTimeout(check, 2000);
  };
  setTimeout(check, 2000);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.innerText);
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});
