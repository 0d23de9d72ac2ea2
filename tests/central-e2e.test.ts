import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plateHash } from '../src/anpr/privacy.js';
import { newEventId } from '../src/core/event.js';
import { type CentralRig, RIG_HASH_KEY, RIG_LOCATION, startCentralRig } from './helpers/central-rig.js';
import { REPO_ROOT } from './helpers/repo.js';

// The loop closed end to end: a real daemon (simulated GPIO) as the pole, a real Mosquitto as the
// central broker, the ingest and console on SQLite, and Debian's Chromium as the operator's
// browser. The pole's press appears on the console; the operator acknowledges; the pole's LED
// turns to "acknowledged"; a second operator's browser shows the same. Screenshots go to
// test-artifacts/.

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');

let rig: CentralRig;

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** An event as a simulated device (one without a daemon) sends it, published on its topic. */
async function publishAs(device: string, type: string, priority: string, payload: Record<string, unknown>, time = new Date().toISOString()) {
  const e = { id: newEventId(), device, site: 'test-site', type, priority, time, clock: 'synced', boot_id: 'b', mono_ms: 1, seq: 1, payload };
  const client = await mqtt.connectAsync(rig.broker.url, { clientId: device, protocolVersion: 5 });
  await client.publishAsync(`vigia/test-site/${device}/events/${priority}/${type}`, JSON.stringify(e), { qos: 1 });
  await client.endAsync();
  return e;
}

/** The browser logs a refused request as an error: one expected here is taken out of the problems. */
async function expectedRefusal(status: number) {
  await until(() => rig.problems.some((p) => p.includes(`status of ${status}`)), `the refused request (${status}) logged`);
  rig.problems.splice(
    rig.problems.findIndex((p) => p.includes(`status of ${status}`)),
    1,
  );
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  rig = await startCentralRig();
}, 60_000);

afterAll(async () => {
  await rig?.stop();
});

describe('operator console in Chromium, against a real pole', () => {
  it('shows a press within a second, acknowledges it back to the pole’s LED, and a second operator sees the same', async () => {
    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-empty.png') });
    const outputs = rig.outputs;

    const pressed = Date.now();
    await rig.press(true);
    const row = page.locator('.alarm[data-device="pole-0001"]');
    await row.waitFor({ timeout: 10_000 });
    const pressToScreen = Date.now() - pressed;
    await rig.press(false);
    expect(await row.getAttribute('data-state')).toBe('raised');
    await expect(row.locator('.what').textContent()).resolves.toBe('Botón de pánico'); // Spanish first
    expect((await outputs()).button_led!.pattern.mode).toBe('blink');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-alarm.png') });

    const clicked = Date.now();
    await row.locator('button.ack').click();
    await until(async () => (await outputs()).button_led!.pattern.mode === 'on', 'the pole’s LED acknowledged');
    const ackToLed = Date.now() - clicked;
    await page.waitForSelector('.alarm[data-device="pole-0001"][data-state="acknowledged"]');
    await expect(row.locator('.badge').textContent()).resolves.toContain('oscar');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-acknowledged.png') });

    // Another operator, another browser session: the same state.
    const second = await rig.operatorPage('sara', 'sara-password-1');
    await second.waitForSelector('.alarm[data-device="pole-0001"][data-state="acknowledged"]');
    // English on the toggle.
    await second.click('#lang');
    await expect(second.locator('.alarm[data-device="pole-0001"] .what').textContent()).resolves.toBe('Panic button');

    // Cleared from the second console: the pole's LED goes off, and the first console sees it.
    await second.locator('.alarm[data-device="pole-0001"] button.clear').click();
    await until(async () => (await outputs()).button_led!.pattern.mode === 'off', 'the pole’s alarm cleared');
    await page.waitForSelector('.alarm[data-device="pole-0001"][data-state="cleared"]');
    expect(rig.problems).toEqual([]);
    process.stdout.write(`central e2e: press to screen ${pressToScreen} ms, acknowledge to LED ${ackToLed} ms\n`);
  });

  it('shows a plate hit with its crop, its hotlist entry and the match kind', async () => {
    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    const crop = (
      await sharp({ create: { width: 120, height: 40, channels: 3, background: '#f4f4f0' } })
        .jpeg()
        .toBuffer()
    ).toString('base64');
    await publishAs('gantry-1', 'plate.hit', 'alarm', {
      camera: 'lane-1',
      plate: 'BBCL12',
      display: 'BB·CL·12',
      confidence: 0.97,
      match: { kind: 'exact', distance: 0 },
      entry: { plate: 'BBCL12', reason: 'encargo por robo', source: 'Carabineros', added: '2026-11-01', expires: null },
      evidence: { crop: { content_type: 'image/jpeg', width: 120, height: 40, data: crop }, frame: null, files: [] },
    });
    const row = page.locator('.alarm[data-device="gantry-1"]');
    await row.waitFor({ timeout: 10_000 });
    await expect(row.locator('.what').textContent()).resolves.toBe('Patente con encargo BB·CL·12');
    await expect(row.textContent()).resolves.toContain('encargo por robo (Carabineros)');
    expect(await row.locator('img.crop').getAttribute('src')).toBe(`data:image/jpeg;base64,${crop}`);
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-hit.png') });
    expect(rig.problems).toEqual([]);
  });

  it("shows a community kit's remote press with who pressed, where they live and how to call them back", async () => {
    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    await publishAs('kit-0031', 'alarm.remote', 'alarm', {
      remote: 'casa-soto',
      code: 'ev1527:4c021',
      button: 1,
      household: { name: 'Sra. Soto', address: 'Los Aromos 131', phone: '+56 9 5555 0102', notes: 'vive sola' },
      receiver: 'rtl_433',
      rssi_db: -14.2,
      pressed_at: new Date().toISOString(),
      alarm_id: null,
      press: 1,
      snapshot: null,
    });
    const row = page.locator('.alarm[data-device="kit-0031"]');
    await row.waitFor({ timeout: 10_000 });
    await expect(row.locator('.what').textContent()).resolves.toBe('Control remoto vecinal · Sra. Soto');
    await expect(row.locator('.household').textContent()).resolves.toBe('Los Aromos 131 · +56 9 5555 0102 · vive sola');
    // Answered like a panic press.
    expect(await row.locator('button.ack').count()).toBe(1);
    expect(await row.locator('button.clear').count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-remote.png') });
    expect(rig.problems).toEqual([]);
  });

  it("shows a personal alarm tag's press with who carries it, the tag and how close it was", async () => {
    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    await publishAs('pole-0207', 'alarm.personal', 'alarm', {
      tag: 'ana-perez',
      tag_id: '002a',
      person: { name: 'Ana Pérez', address: null, phone: '+56 9 8765 4321', notes: 'Colegio San Joaquín' },
      adapter: 'hci0',
      address: 'C3:11:22:33:44:55',
      rssi_dbm: -67,
      location: { lat: -29.9045, lon: -71.2489 },
      pressed_at: new Date().toISOString(),
      alarm_id: null,
      press: 1,
      snapshot: null,
    });
    const row = page.locator('.alarm[data-device="pole-0207"]');
    await row.waitFor({ timeout: 10_000 });
    await expect(row.locator('.what').textContent()).resolves.toBe('Alarma personal · Ana Pérez');
    await expect(row.locator('.household').textContent()).resolves.toBe('+56 9 8765 4321 · Colegio San Joaquín');
    await expect(row.locator('.tag').textContent()).resolves.toBe('Dispositivo 002a · -67 dBm');
    expect(await row.locator('button.ack').count()).toBe(1);
    expect(await row.locator('button.clear').count()).toBe(1);
    expect(rig.problems).toEqual([]);
  });
});

describe('map, devices, search, hotlist and users in Chromium', () => {
  it('places the pole on the map from its configured position, with an open alarm ringed, and lists its cameras and list', async () => {
    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    await rig.press(true);
    await page.locator('.alarm[data-device="pole-0001"][data-state="raised"]').first().waitFor({ timeout: 10_000 });
    await rig.press(false);
    const dot = page.locator('#map g[data-device="pole-0001"] circle');
    await dot.waitFor({ timeout: 10_000 });
    expect(await dot.getAttribute('class')).toBe('device online');
    await page.locator('#map .alarm-ring').first().waitFor();
    // The grid is labelled in degrees around the pole, and nothing was asked of another machine.
    const labels = await page.locator('#map .axis').allTextContents();
    expect(labels.some((l) => Math.abs(Number(l) - RIG_LOCATION.lat) < 0.02)).toBe(true);
    expect(labels.some((l) => Math.abs(Number(l) - RIG_LOCATION.lon) < 0.02)).toBe(true);
    await expect(page.locator('.alarm[data-device="pole-0001"] .geo').first().textContent()).resolves.toBe('-29.90450, -71.27350');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-map.png') });

    await page.click('#tabs button[data-tab="devices"]');
    const row = page.locator('#devices tr[data-device="pole-0001"]');
    await until(async () => ((await row.locator('.hotlist').textContent()) ?? '').startsWith('1 · '), 'the pole’s list in the devices table');
    // The camera's state comes only from the pole's health report (its `anpr` section).
    await until(async () => /^street: /.test((await row.locator('.cameras').textContent()) ?? ''), 'the pole’s camera from its health report');
    expect(rig.problems).toEqual([]);
  });

  it('finds a hashed read by the plate and the key the operator types (the key stays in the browser), and audits the search', async () => {
    const at = new Date().toISOString();
    await publishAs(
      'gantry-2',
      'plate.read',
      'read',
      {
        camera: 'lane-1',
        plate_hash: plateHash(RIG_HASH_KEY, 'KXTR45'),
        hash: 'hmac-sha256',
        confidence: 0.91,
        frames: 3,
        first_seen: at,
        last_seen: at,
        box: [1, 2, 3, 4],
        hit: false,
        format: 'cl-2007',
      },
      at,
    );
    await until(async () => (await rig.store.events({ device: 'gantry-2' })).length === 1, 'the read stored');

    const page = await rig.operatorPage('oscar', 'oscar-password-1');
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url() + (r.postData() ?? '')));
    await page.click('#tabs button[data-tab="search"]');
    await page.fill('#search input[name=plate]', 'kx-tr 45');
    await page.click('#search button[type=submit]');
    await until(async () => ((await page.locator('#search-status').textContent()) ?? '').startsWith('0 '), 'no result without the key');
    await page.fill('#search input[name=key]', RIG_HASH_KEY);
    await page.click('#search button[type=submit]');
    const found = page.locator('#results tbody tr');
    await until(async () => (await found.count()) === 1, 'the hashed read found');
    await expect(found.locator('td').nth(1).textContent()).resolves.toBe('test-site / gantry-2');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-search.png') });
    expect(requests.some((r) => r.includes(RIG_HASH_KEY))).toBe(false);
    const audit = await rig.store.audit(20);
    expect(audit.find((a) => a.action === 'search' && a.target === 'hash' && a.user === 'oscar')).toBeDefined();
    expect(audit.find((a) => a.action === 'search' && a.target === 'KXTR45')).toBeDefined();
    expect(rig.problems).toEqual([]);
  });

  it('a supervisor adds a plate to the list, signs it, sends it to the pole, and sees the pole take it', async () => {
    const page = await rig.operatorPage('sara', 'sara-password-1');
    await page.click('#tabs button[data-tab="hotlist"]');
    const pole = page.locator('#hotlist-devices tr[data-device="pole-0001"]');
    await until(async () => (await pole.getAttribute('data-standing')) === 'current', 'the pole up to date with the seeded list');
    await page.fill('#hotlist-change textarea', 'plate,reason,source,added,expires\nKXTR45,encargo por robo,Fiscalía,2026-12-01,\n');
    await page.click('#hotlist-change button[type=submit]');
    await until(async () => (await pole.getAttribute('data-standing')) === 'behind', 'the pole behind the new list');
    await expect(page.locator('#hotlist-current').textContent()).resolves.toContain('2 patentes');
    await pole.locator('input[type=checkbox]').check();
    await page.click('#hotlist-send');
    await until(async () => (await pole.getAttribute('data-standing')) === 'current', 'the pole reporting the new list', 20_000);
    await expect(pole.locator('td').nth(3).textContent()).resolves.toBe('2');
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-hotlist.png') });
    // A bad row changes nothing and says which line.
    await page.fill('#hotlist-change textarea', 'plate,reason,source,added,expires\nnot a plate!,x,y,2026-12-01,\n');
    await page.click('#hotlist-change button[type=submit]');
    await until(async () => ((await page.locator('#hotlist-status').textContent()) ?? '').includes('2:'), 'the bad row reported');
    expect(rig.hotlist.current().size).toBe(2);
    await expectedRefusal(400);
    const actions = (await rig.store.audit(50)).filter((a) => a.user === 'sara').map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['hotlist.change', 'hotlist.send']));

    // An operator sees the list but cannot change it.
    const operator = await rig.operatorPage('oscar', 'oscar-password-1');
    await operator.click('#tabs button[data-tab="hotlist"]');
    await operator.locator('#hotlist-devices tr[data-device="pole-0001"]').waitFor();
    expect(await operator.locator('#hotlist-change').isHidden()).toBe(true);
    const refused = await operator.evaluate(async () => {
      const me = (await (await fetch('/api/me')).json()) as { csrf: string };
      const r = await fetch('/api/hotlist/changes', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrf },
        body: JSON.stringify({ remove: ['BBCL12'] }),
      });
      return r.status;
    });
    expect(refused).toBe(403);
    await expectedRefusal(403);
    expect(rig.problems).toEqual([]);
  });

  it('an admin adds and removes an operator in the page; the audit tab shows it; an operator has neither tab', async () => {
    const page = await rig.operatorPage('ana', 'ana-password-01');
    await page.click('#tabs button[data-tab="users"]');
    await page.locator('#users tr[data-user="oscar"]').waitFor();
    await page.fill('#user-add input[name=name]', 'olga');
    await page.selectOption('#user-add select[name=role]', 'operator');
    await page.fill('#user-add input[name=password]', 'olga-password-1');
    await page.click('#user-add button[type=submit]');
    await page.locator('#users tr[data-user="olga"]').waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-users.png') });
    const olga = await rig.operatorPage('olga', 'olga-password-1');
    expect(await olga.locator('#tabs button[data-tab="users"]').isHidden()).toBe(true);
    expect(await olga.locator('#tabs button[data-tab="audit"]').isHidden()).toBe(true);
    await page.locator('#users tr[data-user="olga"] button.remove').click();
    await until(async () => (await page.locator('#users tr[data-user="olga"]').count()) === 0, 'olga removed');
    // Her session ends with her account.
    const status = await olga.evaluate(async () => (await fetch('/api/me')).status);
    expect(status).toBe(401);
    await page.click('#tabs button[data-tab="audit"]');
    await page.locator('#audit tr[data-action="user.remove"]').first().waitFor();
    await page.locator('#audit tr[data-action="user.add"]').first().waitFor();
    expect(rig.problems).toEqual([]);
  });
});
