/* Live figures without reloading the page (replaces <meta http-equiv="refresh">, which moved
   keyboard and screen-reader users back to the top every few seconds).

   A page with data-refresh="N" on <body> fetches itself every N seconds and swaps the inner
   HTML of each element marked data-live (by id) when it changed. Focus stays where it was:
   a focused link or button inside a swapped region is found again by its id, href or name
   and focused without scrolling; scroll position is untouched. The regions are not
   aria-live, so nothing is read out on every tick. */
(function () {
  "use strict";
  const body = document.body;
  if (!body || !body.dataset.refresh) return;
  const seconds = Math.max(1, Number(window.PALAUTE_REFRESH_S || body.dataset.refresh) || 15);

  function selectorFor(el) {
    if (el.id) return "#" + CSS.escape(el.id);
    const href = el.getAttribute("href");
    if (href) return el.tagName.toLowerCase() + '[href="' + href.replace(/"/g, '\\"') + '"]';
    const name = el.getAttribute("name");
    if (name) return el.tagName.toLowerCase() + '[name="' + name.replace(/"/g, '\\"') + '"]';
    return null;
  }

  async function refresh() {
    let text;
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin",
                                                    cache: "no-store" });
      if (!response.ok || response.redirected) return;  // signed out or an error: leave the page as it is
      text = await response.text();
    } catch (_e) {
      return;  // the server is away: try again next time
    }
    const fresh = new DOMParser().parseFromString(text, "text/html");
    const active = document.activeElement;
    document.querySelectorAll("[data-live]").forEach(function (region) {
      const next = region.id && fresh.getElementById(region.id);
      if (!next || next.innerHTML === region.innerHTML) return;
      const hadFocus = active && active !== body && region.contains(active);
      const selector = hadFocus ? selectorFor(active) : null;
      region.innerHTML = next.innerHTML;
      if (selector) {
        const again = region.querySelector(selector);
        if (again) again.focus({ preventScroll: true });
      }
    });
    body.dataset.refreshed = String(Date.now());
  }

  setInterval(refresh, seconds * 1000);
})();
