/* django-eventtrack: copy the vendors' browser ids into one first-party cookie.
 *
 * Hackle, Browsee and PrimeData expose their browser ids only to JavaScript.
 * This copies them into the cookie EventTrackMiddleware reads (URL-encoded JSON:
 * hackle_device_id, browsee_anonymous_id, primedata_session_id), so server-side
 * events join the visitor's browser session. Render it with
 * {% load eventtrack %}{% eventtrack_script %}; the tag sets the data-* options.
 */
(function () {
  "use strict";
  var options = (document.currentScript && document.currentScript.dataset) || {};
  var name = options.cookie || "eventtrack_ids";
  var maxAge = options.maxAge || "34560000";
  var domain = options.domain || "";
  var KEYS = ["hackle_device_id", "browsee_anonymous_id", "primedata_session_id"];
  var SAFE = /^[A-Za-z0-9._:-]{1,128}$/;

  function safe(read) {
    try {
      var value = read();
      return typeof value === "string" && SAFE.test(value) ? value : null;
    } catch (error) {
      return null;
    }
  }

  function stored() {
    var prefix = name + "=";
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < cookies.length; i++) {
      if (cookies[i].indexOf(prefix) === 0) {
        try {
          return JSON.parse(decodeURIComponent(cookies[i].slice(prefix.length))) || {};
        } catch (error) {
          return {};
        }
      }
    }
    return {};
  }

  function hackle() {
    // Hackle's docs declare `const hackleClient = ...`: a global binding, not a window property.
    return typeof hackleClient !== "undefined" ? hackleClient : window.hackleClient;
  }

  function collect() {
    var previous = stored();
    var ids = {};
    var fresh = {
      hackle_device_id: safe(function () { return hackle().getDeviceId(); }),
      browsee_anonymous_id: safe(function () { return window._browsee.user.getId(); }),
      primedata_session_id: safe(function () { return window.cxs.sessionId; })
    };
    for (var i = 0; i < KEYS.length; i++) {
      var value = fresh[KEYS[i]] || safe(function () { return previous[KEYS[i]]; });
      if (value) ids[KEYS[i]] = value;
    }
    var text = JSON.stringify(ids);
    if (text === "{}" || text === JSON.stringify(previous)) return;
    document.cookie = name + "=" + encodeURIComponent(text) + "; path=/; max-age=" + maxAge +
      "; SameSite=Lax" + (domain ? "; domain=" + domain : "") +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  collect();
  document.addEventListener("DOMContentLoaded", collect);
  window.addEventListener("load", collect);
  window.addEventListener("br_session_init", collect); // Browsee's id is ready
  document.addEventListener("click", collect, true); // before a link or button leaves the page
  document.addEventListener("submit", collect, true);
  window.addEventListener("pagehide", collect);
  try {
    hackle().onReady(collect);
  } catch (error) { /* Hackle absent or not yet loaded */ }
  window.eventtrack = { collect: collect };
})();
