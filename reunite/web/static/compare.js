// The lightbox of a case's photos (templates/_compare.html). A link a.zoom[data-lightbox]
// opens its <dialog> at its photo (click, Enter or Space); the arrow keys and the buttons move
// between the case's photos; Esc, the close button or a click beside the photo closes it, and
// the focus goes back to the link. A photo is fetched when first shown. Without JavaScript the
// links open the photo itself.
"use strict";
(() => {
  const LINK = "a.zoom[data-lightbox]";
  let opener = null;

  function show(dialog, index) {
    const slides = [...dialog.querySelectorAll("figure.slide")];
    if (!slides.length) return;
    const current = ((index % slides.length) + slides.length) % slides.length;
    slides.forEach((slide, n) => { slide.hidden = n !== current; });
    const image = slides[current].querySelector("image[data-href]");
    if (image && !image.getAttribute("href")) image.setAttribute("href", image.dataset.href);
    dialog.dataset.current = String(current);
  }

  function open(link) {
    const dialog = document.getElementById(link.dataset.lightbox);
    if (!dialog || typeof dialog.showModal !== "function") return false;
    opener = link;
    show(dialog, Number(link.dataset.index || 0));
    dialog.showModal();
    return true;
  }

  function step(dialog, by) {
    show(dialog, Number(dialog.dataset.current || 0) + by);
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest(LINK);
    if (link) {
      if (open(link)) event.preventDefault();
      return;
    }
    if (event.target.matches("dialog.lightbox")) {  // the backdrop, beside the photo
      event.target.close();
      return;
    }
    const button = event.target.closest("dialog.lightbox button");
    if (!button) return;
    const dialog = button.closest("dialog");
    if (button.hasAttribute("data-close")) dialog.close();
    else step(dialog, Number(button.dataset.step));
  });

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    if (event.key === " " && target.matches(LINK)) {  // a button opens on Space as on Enter
      event.preventDefault();
      open(target);
      return;
    }
    const dialog = target.closest("dialog.lightbox[open]");
    if (dialog && (event.key === "ArrowRight" || event.key === "ArrowLeft")) {
      event.preventDefault();
      step(dialog, event.key === "ArrowRight" ? 1 : -1);
    }
  });

  // "close" does not bubble: listen while it goes down to the dialog.
  document.addEventListener("close", (event) => {
    if (event.target.matches && event.target.matches("dialog.lightbox") && opener) {
      opener.focus();
      opener = null;
    }
  }, true);

  for (const link of document.querySelectorAll(LINK)) link.setAttribute("role", "button");
})();
