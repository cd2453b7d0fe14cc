// Drives the example chat (examples/flask_app) in Debian's headless Chromium, one browser
// context (its own cookies) per user, for the Python tests:
//
//   node chat.js BASE_URL USER [USER...]
//
// Logs each user in, then reads commands on stdin, one per line, and answers each with one
// JSON line on stdout:
//   say USER TEXT      the user sends TEXT with the page's form           -> {"ok": true}
//   wait USER TEXT     until TEXT is among the page's messages (15 s)     -> {"texts": [...]}
//   texts USER         the page's messages                                -> {"texts": [...]}
//   eval USER EXPR     an expression in the page                          -> {"value": ...}
// Exits non-zero on a page error.
'use strict';
const readline = require('readline');
const { chromium } = require('playwright-core');

const [base, ...users] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
  const errors = [];
  const pages = {};
  try {
    for (const user of users) {
      const page = await (await browser.newContext()).newPage();
      page.on('pageerror', (error) => errors.push(`${user}: ${error}`));
      await page.goto(base);
      await page.fill('input[name=name]', user);
      await Promise.all([page.waitForNavigation(), page.click('button')]);
      await page.waitForFunction(() => typeof chat !== 'undefined' && chat.state === 'subscribed', null,
        { timeout: 10000 });
      pages[user] = page;
    }
    console.log(JSON.stringify({ ready: users }));
    const texts = (page) => page.$$eval('#messages li', (items) => items.map((item) => item.textContent));
    const lines = readline.createInterface({ input: process.stdin });
    for await (const line of lines) {
      const [command, user, ...rest] = line.split(' ');
      const page = pages[user];
      const argument = rest.join(' ');
      if (command === 'say') {
        await page.fill('#text', argument);
        await page.press('#text', 'Enter');
        console.log(JSON.stringify({ ok: true }));
      } else if (command === 'wait') {
        await page.waitForFunction((text) => [...document.querySelectorAll('#messages li')]
          .some((item) => item.textContent.includes(text)), argument, { timeout: 15000 }).catch(() => null);
        console.log(JSON.stringify({ texts: await texts(page) }));
      } else if (command === 'texts') {
        console.log(JSON.stringify({ texts: await texts(page) }));
      } else if (command === 'eval') {
        console.log(JSON.stringify({ value: await page.evaluate(argument) }));
      } else if (command === 'quit') {
        lines.close();
        break;
      }
    }
  } finally {
    await browser.close();
  }
  if (errors.length) console.error(errors.join('\n'));
  process.exit(errors.length ? 1 : 0);  // stdin may still be open: do not wait for it
})().catch((error) => { console.error(error); process.exit(1); });
