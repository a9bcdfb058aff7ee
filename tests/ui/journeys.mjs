// The web UI's journeys in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core from ui/node_modules), against a real node started by
// tests/integration/ui.rs. Environment: AGORA_URL, AGORA_HOLDER_TOKEN, AGORA_RESEARCHER_TOKEN,
// AGORA_SCREENSHOTS (folder for the PNGs). Exits non-zero on the first failed step.
import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../ui/package.json"));
const { chromium } = require("playwright-core");

const url = process.env.AGORA_URL;
const holderToken = process.env.AGORA_HOLDER_TOKEN;
const researcherToken = process.env.AGORA_RESEARCHER_TOKEN;
const shots = process.env.AGORA_SCREENSHOTS || join(here, "../../docs/screenshots");  // the committed ones by default
assert.ok(url && holderToken && researcherToken, "AGORA_URL and both tokens are set");
mkdirSync(shots, { recursive: true });

// Playwright gives the browser a fresh, temporary user-data-dir of its own on every launch.
const browser = await chromium.launch({
  executablePath: process.env.AGORA_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

function step(name) {
  console.log(`journey step: ${name}`);
}

const axeSource = require.resolve("axe-core/axe.min.js");
const accessibility = [];

/** Runs axe-core (WCAG 2 A and AA rules, contrast included) on the page; serious and critical
 * findings fail the journeys at the end, all are printed. */
async function audit(page, name) {
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] });
    return {
      passes: result.passes.length,
      violations: result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) })),
    };
  }).then(({ passes, violations }) => {
    console.log(`axe ${name}: ${passes} rules pass, ${violations.length} violated`);
    return violations;
  });
  for (const v of violations) {
    console.log(`axe ${name}: ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(", ")}`);
    if (v.impact === "serious" || v.impact === "critical") accessibility.push(`${name}: ${v.id}`);
  }
}

/** Screenshots of the current page at 1280 px and 390 px wide, and its accessibility audit. */
async function capture(page, name) {
  await audit(page, name);
  for (const [width, height] of [[1280, 900], [390, 844]]) {
    await page.setViewportSize({ width, height });
    await page.screenshot({ path: join(shots, `${name}-${width}.png`), fullPage: true });
    // Nothing may push the page wider than the screen (a phone would scroll sideways).
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > width) throw new Error(`${name} is ${wide} px wide at a ${width} px viewport`);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function newPerson(token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(60_000);
  // axe-core is injected as an init script (the pages' CSP allows no injected script tags).
  await context.addInitScript({ path: axeSource });
  const page = await context.newPage();
  page.on("pageerror", (error) => { throw new Error(`script error on ${page.url()}: ${error.message}`); });
  if (token) {
    await page.goto(`${url}/sign-in`);
    await page.getByLabel("Participant token (JWT)").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(`${url}/`);
    await page.getByText("Signed in as").waitFor();
  }
  return { context, page };
}

let failed = false;
try {
  // ---------------------------------------------------------------- 1. search, facet, dataset
  step("1 search, facet, dataset page");
  const anonymous = await newPerson(null);
  let page = anonymous.page;
  await page.goto(`${url}/`);
  await page.getByRole("heading", { name: "Sector pools" }).waitFor();
  await capture(page, "home");
  // By keyboard: the skip link first, then the search box; Enter searches.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "q");
  await page.keyboard.type("trips");
  await page.keyboard.press("Enter");
  await page.waitForURL(/q=trips/);
  assert.ok(Number(await page.locator("#result-count").textContent()) >= 1, "the mobility pool by keyboard");
  await page.getByLabel("Search the catalogue").fill("hospital");
  await page.getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/q=hospital/);
  const count = Number(await page.locator("#result-count").textContent());
  assert.ok(count >= 1, `search finds the health pool (${count})`);
  await page.getByRole("navigation", { name: "Theme" }).getByRole("link", { name: /Health/ }).click();
  await page.waitForURL(/theme=/);
  assert.match(await page.locator("#result-count").textContent(), /^[1-9]/);
  await page.locator(".results h3 a").first().click();
  await page.getByRole("heading", { name: "Usage policy" }).waitFor();
  const policy = await page.locator("ul.policy").first().textContent();
  assert.match(policy, /pseudonymised/);
  assert.match(policy, /birth dates reduced to year/);
  assert.match(policy, /groups under 11 suppressed/);
  for (const format of ["JSON-LD", "Turtle", "N-Triples", "RDF/XML"]) {
    await page.getByRole("link", { name: format, exact: true }).waitFor();
  }
  const turtle = await page.request.get(url + await page.getByRole("link", { name: "Turtle", exact: true }).getAttribute("href"));
  assert.match(turtle.headers()["content-type"], /text\/turtle/);
  await capture(page, "dataset");

  // ---------------------------------------------------------------- 2. SPARQL
  step("2 SPARQL query, table, CSV download");
  await page.goto(`${url}/sparql-editor`);
  const editor = page.locator(".cm-editor");
  const bundle = await page.request.get(`${url}/ui/assets/editor.js`);
  const enhanced = (await editor.count()) > 0;
  assert.equal(enhanced, bundle.ok(), "CodeMirror replaces the textarea exactly when the bundle is served");
  if (enhanced) {
    // SPARQL highlighting: keywords get their own token spans.
    assert.ok((await page.locator(".cm-content span").count()) > 3, "highlighted tokens");
  }
  await page.getByRole("link", { name: "Datasets and their titles" }).click();
  if (enhanced) {
    await page.waitForURL(`${url}/sparql-editor`);
    await page.locator(".cm-content").click();
    await page.getByRole("button", { name: "Run query" }).click();
  } else {
    await page.getByRole("button", { name: "Run query" }).click();
  }
  await page.locator("#results").waitFor();
  const rows = await page.locator("#results tbody tr").count();
  assert.ok(rows >= 3, `three demo datasets at least (${rows})`);
  await capture(page, "sparql");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("#download-csv").click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv.split(/\r?\n/)[0], /^dataset,title$/);
  assert.ok(csv.includes("/datasets/health"), "the CSV carries the rows");
  await anonymous.context.close();

  // ---------------------------------------------------------------- 3. publish
  step("3 publish with an invalid field, fix it, find the dataset");
  const holder = await newPerson(holderToken);
  page = holder.page;
  await page.goto(`${url}/publish`);
  await page.getByLabel("Description").fill("Water levels of 40 river gauges, every 15 minutes, 2025.");
  await page.getByLabel("Sector pool").selectOption("climate");
  await page.getByLabel("Keywords").fill("water, rivers, floods");
  await page.getByLabel("Contact e-mail").fill("gauges@example.org");
  await page.getByLabel("Distribution format").selectOption("CSV");
  await page.getByLabel("Distribution URL").fill("https://rivers.example.org/gauges/");
  await page.getByLabel("Licence").selectOption("CC_BY_4_0");
  await page.getByLabel("Usage policy").selectOption("approval");
  await page.getByRole("button", { name: "Publish" }).click();
  await page.locator("#title-error").waitFor();
  assert.match(await page.locator("#title-error").textContent(), /dct:title/);
  assert.equal(await page.getByLabel(/^Title/).getAttribute("aria-invalid"), "true");
  await capture(page, "publish-invalid");
  await page.getByLabel(/^Title/).fill("River gauge levels 2025");
  await page.getByRole("button", { name: "Publish" }).click();
  await page.getByRole("heading", { name: "River gauge levels 2025" }).waitFor();
  const published = page.url().split("/datasets/")[1];
  assert.ok(published, "the new dataset's page");
  await page.goto(`${url}/?q=river+gauge`);
  await page.getByRole("link", { name: "River gauge levels 2025" }).waitFor();

  // ---------------------------------------------------------------- 4. refused, then agreed
  step("4 request access: refused purpose, then an accepted one");
  const researcher = await newPerson(researcherToken);
  const rpage = researcher.page;
  await rpage.goto(`${url}/datasets/health`);
  await rpage.getByLabel("Purpose", { exact: true }).selectOption("https://w3id.org/dpv#Marketing");
  await rpage.getByRole("button", { name: "Request access" }).click();
  await rpage.locator("#refusal").waitFor();
  assert.equal(await rpage.locator("#negotiation-state").textContent(), "TERMINATED");
  const failedConstraints = await rpage.locator("#failed-constraints").textContent();
  assert.match(failedConstraints, /purpose/i);
  await capture(rpage, "negotiation-refused");
  await rpage.getByRole("link", { name: "Request again with another purpose" }).click();
  await rpage.getByLabel("Purpose", { exact: true }).selectOption("https://w3id.org/dpv#AcademicResearch");
  await rpage.getByRole("button", { name: "Request access" }).click();
  await rpage.locator("#agreement").waitFor();
  assert.equal(await rpage.locator("#negotiation-state").textContent(), "FINALIZED");
  const snippet = await rpage.locator("#snippet").textContent();
  assert.match(snippet, /agora_client\.Node\(/);
  assert.match(snippet, /node\.read\(/);
  assert.match(snippet, /agora_client\.torch\.AgoraIterableDataset\(node, agreement\)/);
  const healthAgreement = await rpage.locator("#agreement-id").textContent();
  assert.ok(snippet.includes(healthAgreement));
  await capture(rpage, "negotiation-agreed");

  // ---------------------------------------------------------------- 5. approval
  step("5 a permit waits for the holder, who approves it");
  await rpage.goto(`${url}/datasets/${published}`);
  await rpage.getByLabel("Purpose", { exact: true }).selectOption("https://w3id.org/dpv#AcademicResearch");
  await rpage.getByRole("button", { name: "Request access" }).click();
  await rpage.locator("#waiting").waitFor();
  assert.equal(await rpage.locator("#negotiation-state").textContent(), "REQUESTED");
  await page.goto(`${url}/holder`);
  const row = page.locator("#pending tbody tr", { hasText: "River gauge levels 2025" });
  await row.waitFor();
  await capture(page, "holder");
  await row.getByLabel("Note (optional)").fill("ethics approval seen");
  await row.getByRole("button", { name: "Approve" }).click();
  await page.locator("#no-pending").waitFor();
  // The researcher's page refreshes itself until the negotiation ends.
  await rpage.locator("#negotiation-state", { hasText: "FINALIZED" }).waitFor();
  assert.match(await rpage.locator("#events").textContent(), /ethics approval seen/);
  // The researcher starts a transfer under the health agreement (through the API, as the Python
  // client would); the holder's audit trail shows it.
  const transfer = await rpage.request.post(`${url}/api/transfers`, {
    headers: { Authorization: `Bearer ${researcherToken}`, "Content-Type": "application/json" },
    data: { agreement: healthAgreement },
  });
  assert.equal(transfer.status(), 201, await transfer.text());
  const { token: dataToken } = await transfer.json();
  const pulled = await rpage.request.get(
    `${url}/data/${encodeURIComponent(healthAgreement)}/arrow?limit=100`,
    { headers: { Authorization: `Bearer ${dataToken}` } },
  );
  assert.equal(pulled.status(), 200, await pulled.text());
  await page.goto(`${url}/holder`);
  await page.locator('a[href="/holder/audit/health"]').click();
  await page.getByRole("heading", { name: /Audit trail of health/ }).waitFor();
  assert.match(await page.locator("#audit").textContent(), /dr-researcher/);
  await capture(page, "audit");

  // Signing out forgets the token.
  step("sign out");
  await rpage.getByRole("button", { name: "Sign out" }).click();
  await rpage.getByRole("link", { name: "Sign in" }).waitFor();
  const cookies = await researcher.context.cookies();
  assert.ok(!cookies.some((c) => c.name === "agora_session" && c.value), "the session cookie is gone");
  assert.deepEqual(accessibility, [], "no serious or critical accessibility violations");
  console.log("all journeys passed");
} catch (error) {
  failed = true;
  console.error(`JOURNEY FAILED: ${error.stack || error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
