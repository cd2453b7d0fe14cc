// Drives the dashboard (admin_options) in Debian's headless Chromium for
// tests/integration/test_dashboard.py.
//
//   node dashboard.js ADMIN_URL OUT_DIR
//
// Reads one command per line on stdin and answers each with one JSON line on stdout:
//   open                      -> {status, login}: the page as a stranger sees it
//   login TOKEN               -> {status, error, dashboard}: the login form, then the page
//   goto URL                  -> {status, url}: any page (a Flask login)
//   count N                   -> {sockets}: once the page shows N open sockets (15 s at most)
//   points N                  -> {points, rows}: once the sockets plot has N points, and its table's rows
//   shot NAME WIDTH HEIGHT    -> {path, overflow}: a screenshot at that size, and whether the page
//                                is wider than the window
// Exits non-zero on an error of the page. CHROMIUM overrides the browser's path.
'use strict';
const path = require('path');
const readline = require('readline');
const { chromium } = require('playwright-core');

const [adminUrl, outDir] = process.argv.slice(2);
const say = (data) => console.log(JSON.stringify(data));

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
                                          args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  const lines = readline.createInterface({ input: process.stdin });
  try {
    for await (const line of lines) {
      const [command, ...args] = line.trim().split(/\s+/);
      if (command === 'open') {
        const response = await page.goto(adminUrl);
        say({ status: response.status(), login: await page.locator('form input[name=token]').count() === 1 });
      } else if (command === 'login') {
        await page.goto(adminUrl);
        await page.fill('input[name=token]', args[0] || '');
        const [response] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
        say({ status: response.status(), error: (await page.locator('.error').count()) ? await page.textContent('.error') : '',
              dashboard: await page.locator('#total-connections').count() === 1 });
      } else if (command === 'goto') {
        const response = await page.goto(args[0]);
        say({ status: response.status(), url: page.url() });
      } else if (command === 'count') {
        await page.waitForFunction((n) => document.getElementById('total-connections').textContent === n,
          args[0], { timeout: 15000 });
        say({ sockets: Number(await page.textContent('#total-connections')) });
      } else if (command === 'points') {
        const wanted = Number(args[0]);
        await page.waitForFunction((n) => {
          const line = document.querySelector('#plot-connections polyline');
          return line && line.getAttribute('points').trim().split(' ').filter(Boolean).length >= n;
        }, wanted, { timeout: 20000 });
        await page.click('#figure-connections summary');
        await page.waitForFunction(() => document.querySelectorAll('#table-connections tbody tr').length > 0);
        say({ points: (await page.getAttribute('#plot-connections polyline', 'points')).trim().split(' ').length,
              rows: await page.locator('#table-connections tbody tr').count() });
      } else if (command === 'shot') {
        const [name, width, height] = args;
        await page.setViewportSize({ width: Number(width), height: Number(height) });
        await page.waitForTimeout(1200);  // the next poll draws at the new size (a screenshot, not a synchronisation)
        const file = path.join(outDir, `${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
        say({ path: file, overflow });
      } else if (command === 'quit') {
        break;
      }
      if (errors.length) throw new Error(errors.join('; '));
    }
  } finally {
    await browser.close();
  }
})().catch((error) => { console.error(error); process.exit(1); });
