import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newEventId } from '../src/core/event.js';
import { type CentralRig, startCentralRig } from './helpers/central-rig.js';
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
    const gantry = await mqtt.connectAsync(rig.broker.url, { clientId: 'gantry-1', protocolVersion: 5 });
    const hit = {
      id: newEventId(),
      device: 'gantry-1',
      site: 'test-site',
      type: 'plate.hit',
      priority: 'alarm',
      time: new Date().toISOString(),
      clock: 'synced',
      boot_id: 'b',
      mono_ms: 1,
      seq: 1,
      payload: {
        camera: 'lane-1',
        plate: 'BBCL12',
        display: 'BB·CL·12',
        confidence: 0.97,
        match: { kind: 'exact', distance: 0 },
        entry: { plate: 'BBCL12', reason: 'encargo por robo', source: 'Carabineros', added: '2026-11-01', expires: null },
        evidence: { crop: { content_type: 'image/jpeg', width: 120, height: 40, data: crop }, frame: null, files: [] },
      },
    };
    await gantry.publishAsync('vigia/test-site/gantry-1/events/alarm/plate.hit', JSON.stringify(hit), { qos: 1 });
    await gantry.endAsync();
    const row = page.locator('.alarm[data-device="gantry-1"]');
    await row.waitFor({ timeout: 10_000 });
    await expect(row.locator('.what').textContent()).resolves.toBe('Patente con encargo BB·CL·12');
    await expect(row.textContent()).resolves.toContain('encargo por robo (Carabineros)');
    expect(await row.locator('img.crop').getAttribute('src')).toBe(`data:image/jpeg;base64,${crop}`);
    await page.screenshot({ path: join(ARTIFACTS, 'central-console-hit.png') });
    expect(rig.problems).toEqual([]);
  });
});
