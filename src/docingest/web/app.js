// The dashboard's entry: sign-in, the header and navigation, and routing by URL hash.

import { api, clearToken, ENVIRONMENT, getToken, setToken, tokenSubject, whenUnauthorized } from "./api.js";
import { events } from "./events.js";
import { fill, focusHeading, h, notice } from "./ui.js";
import * as documentsPage from "./documents.js";
import * as documentPage from "./document.js";
import * as uploadPage from "./upload.js";
import * as searchPage from "./search.js";
import * as healthPage from "./health.js";

const main = document.getElementById("main");
const topbar = document.getElementById("topbar");

const NAV = [
  ["#/documents", "Documents"],
  ["#/upload", "Upload"],
  ["#/search", "Search"],
  ["#/health", "Health"],
];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let cleanup = null;
let signOutMessage = null;
let firstRoute = true;

/** The page for a hash: [module, params, nav link]. */
function resolve(hash) {
  const path = hash.replace(/^#/, "").split("?")[0] || "/documents";
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "documents" && parts.length === 2 && UUID.test(parts[1])) {
    return [documentPage, { id: parts[1].toLowerCase() }, "#/documents"];
  }
  if (parts.length === 1) {
    const page = { documents: documentsPage, upload: uploadPage, search: searchPage, health: healthPage }[parts[0]];
    if (page) return [page, {}, `#/${parts[0]}`];
  }
  return [null, {}, null];
}

function notFound(root) {
  document.title = "Not found · docingest";
  fill(root, h("h1", {}, "Page not found"), h("p", {}, "There is no page at this address. ", h("a", { href: "#/documents" }, "Go to the list.")));
}

/** Run the current page's cleanup (its stream subscriptions, timers) once. */
function leavePage() {
  if (!cleanup) return;
  try {
    cleanup();
  } catch (err) {
    console.error(err);
  }
  cleanup = null;
}

function route() {
  if (!getToken()) return showSignIn();
  leavePage();
  const [page, params, current] = resolve(location.hash);
  for (const a of topbar.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = h("div", { class: "page" });
  fill(main, root);
  if (page) cleanup = page.render(root, params) || null;
  else notFound(root);
  if (!firstRoute) focusHeading(root);
  firstRoute = false;
}

function renderHeader(userId) {
  const liveDot = h("span", { class: "live-dot", "aria-hidden": "true" });
  const liveText = h("span", {}, "Connecting");
  const live = h("span", { class: "live", "data-testid": "live-status", title: "Updates from the event stream" }, liveDot, liveText);
  events.onStatus((status) => {
    live.dataset.status = status;
    liveText.textContent = { connecting: "Connecting", live: "Live", reconnecting: "Reconnecting", unavailable: "Offline" }[status] || status;
  });
  fill(
    topbar,
    h("a", { class: "brand", href: "#/documents" }, h("img", { src: "/static/favicon.svg", alt: "", width: 22, height: 22 }), h("span", {}, "docingest")),
    h("nav", { "aria-label": "Main" }, h("ul", {}, NAV.map(([href, text]) => h("li", {}, h("a", { href }, text))))),
    h(
      "div",
      { class: "account" },
      live,
      h("span", { class: "user" }, h("span", { class: "visually-hidden" }, "Signed in as "), h("span", { "data-testid": "user-id" }, userId)),
      h("button", { type: "button", class: "button subtle", onclick: () => signOut() }, "Sign out"),
    ),
  );
  topbar.hidden = false;
}

function signIn(token, userId) {
  setToken(token);
  sessionStorage.setItem("docingest.user", userId || tokenSubject(token) || "signed in");
  start();
}

function signOut(message = null) {
  events.stop();
  clearToken();
  sessionStorage.removeItem("docingest.user");
  signOutMessage = message;
  leavePage();
  showSignIn();
}

function showSignIn() {
  topbar.hidden = true;
  fill(topbar);
  document.title = "Sign in · docingest";
  const tokenInput = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const message = h("div", { class: "signin-message" });
  if (signOutMessage) message.append(notice("error", signOutMessage));
  signOutMessage = null;
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");

  const fail = (err) => {
    const text = err?.message || "The API could not be reached.";
    fill(message, notice("error", text));
  };
  const form = h(
    "form",
    {
      class: "signin-form",
      onsubmit: async (event) => {
        event.preventDefault();
        const token = tokenInput.value.trim();
        if (!token) return fill(message, notice("error", "Paste an access token first."));
        submit.disabled = true;
        try {
          await api("/documents", { query: { limit: 1 }, token });
          signIn(token, null);
        } catch (err) {
          fail(err);
          tokenInput.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("label", { for: "token" }, "Access token"),
    tokenInput,
    h("p", { id: "token-help", class: "help" }, "A bearer token (JWT) for this API, e.g. from ", h("code", {}, "docingest token --user USER"), ". It is kept in this tab only."),
    submit,
  );
  const card = h("section", { class: "signin card", "aria-labelledby": "signin-title" }, h("h1", { id: "signin-title" }, "Sign in to docingest"), form, message);
  if (ENVIRONMENT === "development") {
    const local = h(
      "button",
      {
        type: "button",
        class: "button",
        onclick: async () => {
          local.disabled = true;
          try {
            const reply = await api("/auth/local", { method: "POST", token: "" });
            signIn(reply.access_token, reply.user_id);
          } catch (err) {
            fail(err);
          } finally {
            local.disabled = false;
          }
        },
      },
      "Use the local development user",
    );
    card.append(h("div", { class: "signin-local" }, h("p", { class: "help" }, "Development mode: sign in as the CLI's user ", h("code", {}, "local"), "."), local));
  }
  fill(main, h("div", { class: "signin-wrap" }, card));
  tokenInput.focus();
}

function start() {
  renderHeader(sessionStorage.getItem("docingest.user") || tokenSubject(getToken()) || "signed in");
  events.start();
  firstRoute = true;
  route();
}

whenUnauthorized((err) => signOut(`You were signed out: ${err.message}`));
window.addEventListener("hashchange", route);
document.querySelector(".skip-link")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
if (getToken()) start();
else showSignIn();
