// Starts Swagger UI from local files (no CDN, no inline script, so the CSP holds).
/* global SwaggerUIBundle */
(function startSwaggerUi() {
  const root = document.getElementById("swagger-ui");

  // Swagger UI's page goes from its title (h1) to the tags (h3): a heading of the level
  // between keeps the outline whole for screen readers.
  function addOperationsHeading() {
    const firstTag = root.querySelector(".opblock-tag-section");
    if (!firstTag || root.querySelector("#operations-heading")) return;
    const heading = document.createElement("h2");
    heading.id = "operations-heading";
    heading.className = "visually-hidden";
    heading.textContent = "Operations";
    firstTag.parentNode.insertBefore(heading, firstTag);
  }

  // Names and keyboard access that Swagger UI's markup lacks (axe-core's button-name,
  // scrollable-region-focusable, heading-order), set on its elements as they appear.
  const FIXES = [
    [".copy-to-clipboard > button:not([aria-label])", { "aria-label": "Copy to clipboard" }],
    [".close-modal:not([aria-label])", { "aria-label": "Close" }],
    [".microlight:not([tabindex]), .curl:not([tabindex])", { tabindex: "0" }],
    [".modal-ux-header > h3:not([aria-level])", { role: "heading", "aria-level": "2" }],
    [".modal-ux-content h4:not([aria-level])", { role: "heading", "aria-level": "3" }],
  ];

  function fixUp() {
    for (const [selector, attributes] of FIXES) {
      for (const el of root.querySelectorAll(selector)) {
        for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
      }
    }
  }

  new MutationObserver(fixUp).observe(root, { childList: true, subtree: true });

  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    // Deep links make each path a link inside its expand button (axe-core's
    // nested-interactive; upstream issue swagger-api/swagger-ui 9570 on GitHub).
    deepLinking: false,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // never send the document to an outside validator
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    onComplete: addOperationsHeading,
  });
})();
