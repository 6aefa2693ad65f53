// memlib's companion site: every figure in a notebook's output opens at full size when clicked.
document.addEventListener("DOMContentLoaded", () => {
  for (const img of document.querySelectorAll(".bd-article .cell_output img")) {
    if (img.closest("a")) continue;
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    link.className = "memlib-full";
    link.title = "open the figure at full size";
    img.replaceWith(link);
    link.appendChild(img);
  }
});
