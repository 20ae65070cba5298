// The consumer page of a serialised item: with the reader's consent, add an approximate
// location (rounded to 0.1°, about 10 km) to this scan, so that a label scanned in two far-apart
// places within hours can be flagged as copied (see web/scans.py). Nothing happens without a
// tap on the button; the browser then asks its own permission.

const button = document.querySelector('[data-geo-button]');
const status = document.querySelector('[data-geo-status]');
const messages = JSON.parse(document.querySelector('[data-geo-messages]')?.textContent ?? '{}');

function say(text) {
  status.textContent = text;
  status.hidden = false;
}

button?.addEventListener('click', () => {
  if (!navigator.geolocation) {
    say(messages.denied);
    return;
  }
  button.disabled = true;
  navigator.geolocation.getCurrentPosition(
    (position) => {
      const lat = position.coords.latitude.toFixed(1);
      const lon = position.coords.longitude.toFixed(1);
      const url = new URL(window.location.href);
      url.searchParams.set('geo', `${lat},${lon}`);
      // The server folds this request into the scan it already counted (same network, minutes
      // apart) and adds the location to it.
      window.location.replace(url.toString());
    },
    () => {
      button.disabled = false;
      say(messages.denied);
    },
    { enableHighAccuracy: false, maximumAge: 600000, timeout: 15000 },
  );
});
