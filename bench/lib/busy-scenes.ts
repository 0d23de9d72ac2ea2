// Busy street scenes for plate reading, generated from a seed: the real photos of
// ../shared/anpr-bench/{eu,br} with text a gantry camera also sees composited onto them, plus
// synthetic two-line and foreign plates. Nothing is written to the repository: scenes come back in
// memory (the `busy-scenes` entry of `npm run bench` writes them to a folder to look at).
//
// Kinds:
// - `busy`: a photo unchanged but for 3–6 distractors near the car: a camera timestamp in a corner
//   (`2026-12-05 14:03:22` or 14 bare digits), a dealer's plate frame text right above or below the
//   plate, and some of: a brand word (JEEP, FEDEX…), a bus route board, a phone number
//   (`+56 9 8765 4321`), a street sign. The photo's labelled plate stays the only truth.
// - `two_line`: the photo's plate blurred away and a two-line plate drawn over it, about as tall as
//   the car plate was (1 to 1.8 times, at least 28 px): a Chilean motorcycle (LLL over NN, or the
//   older LL over NNN), a Chilean trailer (LLLL over NN), or an Argentine motorcycle (L NNN over
//   LLL, Mercosur; NNN over LLL before). Truth is the lines concatenated, top first.
// - `foreign`: a one-line plate of Argentina (Mercosur AA123BC, black 1995 ABC123), Bolivia
//   (1234ABC), Peru (ABC-123) or Brazil (Mercosur ABC1D23) drawn over the photo's plate box, so the
//   original plate is hidden and the new text is the truth.
// - `multi`: two photos side by side, scaled to one height (at most 720 px), both plates true, and a
//   timestamp.
// - `negative`: a crop of a photo whose plate is blurred away (Gaussian, sigma half the plate's
//   height), with 3–5 distractors; no plate. The photos label one plate each, so a car far behind
//   may still show one that no truth names (in any kind): a reader finding it is not always wrong.
//
// Choices: text is drawn with SVG through sharp in DejaVu (Sans Bold for words and plates, Sans
// Mono for timestamps and route boards, as camera overlays and LED boards are monospaced), at
// plate-like sizes (0.6–0.8 of the plate's height) and others (smaller, or up to 2.5 times), mostly
// on a box of their own. Text boxes are sized from per-character advance widths that are never
// below DejaVu Sans Bold's, so the ink stays inside the stated box. Synthetic plates get a slight
// Gaussian blur (an SVG filter) and a small rotation; the JPEG quality varies from 72 to 90. No
// perspective. Distractors never overlap a plate box (nor each other). Everything random comes
// from one mulberry32 stream seeded by `seed`, photos are taken in name order, so one seed gives
// byte-identical JPEGs on one sharp/libvips build.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { CL_NEW_LETTERS, CL_OLD_LETTERS } from '../../src/anpr/grammars/cl.js';
import { twoLinePlate } from '../../src/anpr/synthetic.js';
import { mulberry32 } from '../../tests/helpers/random.js';

export const SCENE_KINDS = ['busy', 'two_line', 'foreign', 'multi', 'negative'] as const;
export type SceneKind = (typeof SCENE_KINDS)[number];

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface TruthPlate {
  /** Uppercase letters and digits, no separators; two-line plates top line first. */
  text: string;
  box: Box;
  lines: 1 | 2;
  /** CL, AR, BO, PE, BR, or EU for the European photos (various countries). */
  country: string;
}

export type DistractorKind = 'brand' | 'route' | 'phone' | 'sign' | 'timestamp' | 'dealer';

export interface Distractor {
  kind: DistractorKind;
  text: string;
  box: Box;
}

export interface BusyScene {
  /** `KIND-NNN`, unique in a set. */
  id: string;
  kind: SceneKind;
  /** The photos used, as `eu/NAME.jpg`. */
  sources: string[];
  width: number;
  height: number;
  jpeg: Buffer;
  plates: TruthPlate[];
  distractors: Distractor[];
}

export interface BusySceneOptions {
  /** The folder holding eu/ and br/ (../shared/anpr-bench next to the repository). */
  photosDir: string;
  seed: number;
  /** Scenes of each kind (a kind left out gets none). */
  counts: Partial<Record<SceneKind, number>>;
}

/** What to do when the photos are missing: the message names the folder and how to get it. */
export class PhotosMissingError extends Error {
  constructor(dir: string, detail: string) {
    super(
      `busy scenes: ${detail} in ${dir}. It must hold the labelled photos of openalpr/benchmarks ` +
        '(folders endtoend/eu and endtoend/br copied to eu/ and br/, see its README.md), next to the repository as ../shared/anpr-bench; ' +
        'never copy them into the repository.',
    );
    this.name = 'PhotosMissingError';
  }
}

// ---------------------------------------------------------------------------------------------
// Photos

interface Photo {
  /** `eu/NAME.jpg`. */
  source: string;
  file: string;
  text: string;
  box: Box;
  country: string;
}

interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

const RAW = (r: Raw) => ({ raw: { width: r.width, height: r.height, channels: 3 as const } });

/** The labelled photos of eu/ and br/, in name order, boxes clipped to the image. */
export async function loadPhotos(photosDir: string): Promise<Photo[]> {
  if (!existsSync(photosDir)) throw new PhotosMissingError(photosDir, 'the photo folder is missing');
  const photos: Photo[] = [];
  for (const set of ['br', 'eu']) {
    const dir = join(photosDir, set);
    if (!existsSync(dir)) throw new PhotosMissingError(photosDir, `the folder ${set}/ is missing`);
    for (const f of readdirSync(dir).sort()) {
      if (!f.endsWith('.jpg') || !existsSync(join(dir, `${f.slice(0, -4)}.txt`))) continue;
      const cols = readFileSync(join(dir, `${f.slice(0, -4)}.txt`), 'utf8')
        .trim()
        .split('\n')[0]!
        .split('\t');
      const [x, y, w, h] = cols.slice(1, 5).map(Number) as [number, number, number, number];
      const text = (cols[5] ?? '').toUpperCase().replace(/[^A-Z0-9]/g, '');
      if (!text || !(w > 4 && h > 4)) continue;
      const { width = 0, height = 0 } = await sharp(join(dir, f)).metadata();
      const x0 = Math.max(0, Math.round(x));
      const y0 = Math.max(0, Math.round(y));
      const box = { x: x0, y: y0, w: Math.min(width, Math.round(x + w)) - x0, h: Math.min(height, Math.round(y + h)) - y0 };
      if (box.w < 8 || box.h < 6) continue;
      photos.push({ source: `${set}/${f}`, file: join(dir, f), text, box, country: set === 'br' ? 'BR' : 'EU' });
    }
  }
  if (photos.length === 0) throw new PhotosMissingError(photosDir, 'no labelled photos (NAME.jpg with NAME.txt)');
  return photos;
}

// ---------------------------------------------------------------------------------------------
// Randomness

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  float(a = 0, b = 1): number {
    return a + (b - a) * this.next();
  }
  int(a: number, b: number): number {
    return a + Math.floor(this.next() * (b - a + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  chars(set: string, n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += set[Math.floor(this.next() * set.length)];
    return s;
  }
  digits(n: number): string {
    return this.chars('0123456789', n);
  }
}

// ---------------------------------------------------------------------------------------------
// Text

const SANS = 'DejaVu Sans, sans-serif';
const MONO = 'DejaVu Sans Mono, monospace';

/** Advance widths in em, never below DejaVu Sans Bold's (so estimated boxes hold the ink). */
function textWidth(text: string, size: number, mono: boolean): number {
  if (mono) return text.length * 0.61 * size;
  let em = 0;
  for (const c of text) {
    if (c === 'W') em += 1.04;
    else if ('MÑ'.includes(c)) em += 0.93;
    else if (/[A-Z]/.test(c)) em += 0.84;
    else if (/[0-9]/.test(c)) em += 0.72;
    else if (c === ' ') em += 0.36;
    else em += 0.48;
  }
  return em * size;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface TextStyle {
  size: number;
  mono: boolean;
  fill: string;
  /** Box colour, or null for text straight on the scene. */
  background: string | null;
  border?: string;
  opacity?: number;
}

/** A text's box for a style (padding included). */
function textBox(text: string, s: TextStyle): { w: number; h: number } {
  const pad = s.background ? s.size * 0.3 : s.size * 0.08;
  return { w: Math.ceil(textWidth(text, s.size, s.mono) + 2 * pad), h: Math.ceil(s.size * 1.25 + 2 * pad * 0.6) };
}

function textSvg(text: string, box: Box, s: TextStyle): string {
  const bg = s.background
    ? `<rect x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="${Math.min(6, box.h * 0.12)}" fill="${s.background}"${
        s.border ? ` stroke="${s.border}" stroke-width="${Math.max(1, s.size * 0.06)}"` : ''
      }${s.opacity !== undefined ? ` fill-opacity="${s.opacity}"` : ''}/>`
    : '';
  // Cap height is 0.73 em: centre the capitals in the box.
  const baseline = box.y + box.h / 2 + s.size * 0.365;
  return `${bg}<text x="${box.x + box.w / 2}" y="${baseline}" font-family="${s.mono ? MONO : SANS}" font-weight="bold" font-size="${s.size}" text-anchor="middle" fill="${s.fill}">${esc(text)}</text>`;
}

// ---------------------------------------------------------------------------------------------
// Distractors

const BRANDS = [
  'JEEP',
  'FEDEX',
  'TOYOTA',
  'DHL',
  'CHEVROLET',
  'SCANIA',
  'VOLVO',
  'HYUNDAI',
  'NISSAN',
  'SUZUKI',
  'CHILEXPRESS',
  'STARKEN',
  'COCA-COLA',
  'SODIMAC',
];
const ROUTES = ['401 PROVIDENCIA', 'D09 VITACURA', '210 ESTACION CENTRAL', 'B26 MAIPU', '506 PENALOLEN', 'I09 LA FLORIDA', '112N'];
const SIGNS = ['AV APOQUINDO', 'ALAMEDA', 'PARE', 'CEDA EL PASO', 'LOS LEONES', 'SALIDA 12', 'RUTA 68', 'VESPUCIO NORTE'];
const DEALERS = ['AUTOMOTORA LOS ANDES', 'KAUFMANN', 'DERCO CENTER', 'AUTOFACIL.CL', 'SALAZAR ISRAEL', 'AUTOMOTORA 2000', 'BRUNO FRITSCH'];

const pad2 = (n: number) => String(n).padStart(2, '0');

function timestampText(rng: Rng): string {
  const [mo, d, h, mi, s] = [rng.int(1, 12), rng.int(1, 28), rng.int(0, 23), rng.int(0, 59), rng.int(0, 59)].map(pad2);
  return rng.chance(0.5) ? `2026-${mo}-${d} ${h}:${mi}:${s}` : `2026${mo}${d}${h}${mi}${s}`;
}

function phoneText(rng: Rng): string {
  return rng.pick([
    () => `+56 9 ${rng.digits(4)} ${rng.digits(4)}`,
    () => `600 ${rng.digits(3)} ${rng.digits(4)}`,
    () => `+56 2 2${rng.digits(3)} ${rng.digits(4)}`,
  ])();
}

const overlaps = (a: Box, b: Box, margin = 0) => a.x < b.x + b.w + margin && b.x < a.x + a.w + margin && a.y < b.y + b.h + margin && b.y < a.y + a.h + margin;
const inside = (a: Box, width: number, height: number) => a.x >= 0 && a.y >= 0 && a.x + a.w <= width && a.y + a.h <= height;

/** Draws distractors into one SVG body, keeping clear of the plates and of each other. */
class Layer {
  readonly distractors: Distractor[] = [];
  private body = '';
  constructor(
    readonly width: number,
    readonly height: number,
    private readonly plates: Box[],
  ) {}

  private free(b: Box): boolean {
    return inside(b, this.width, this.height) && !this.plates.some((p) => overlaps(b, p, 2)) && !this.distractors.some((d) => overlaps(b, d.box, 2));
  }

  /** Puts the text at the first free spot `at` proposes (up to 60 tries); false when none was free. */
  place(kind: DistractorKind, text: string, style: TextStyle, at: (w: number, h: number) => { x: number; y: number }): boolean {
    let s = style;
    let { w, h } = textBox(text, s);
    // Never wider than 90% of the frame.
    if (w > this.width * 0.9) {
      s = { ...s, size: s.size * ((this.width * 0.9) / w) };
      ({ w, h } = textBox(text, s));
    }
    if (s.size < 6) return false;
    for (let i = 0; i < 60; i++) {
      const p = at(w, h);
      const box = { x: Math.round(p.x), y: Math.round(p.y), w, h };
      if (this.free(box)) {
        this.distractors.push({ kind, text, box });
        this.body += textSvg(text, box, s);
        return true;
      }
    }
    return false;
  }

  svg(extra = ''): Buffer {
    return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${this.width}" height="${this.height}">${extra}${this.body}</svg>`);
  }
}

/** A timestamp overlay in a corner, its size from the frame's height. */
function addTimestamp(rng: Rng, layer: Layer): boolean {
  const size = Math.max(10, Math.round(layer.height * rng.float(0.022, 0.035)));
  const corner = rng.int(0, 3);
  const m = Math.round(size * 0.4);
  const style: TextStyle = { size, mono: true, fill: rng.pick(['#ffffff', '#ffff66']), background: '#000000', opacity: 0.55 };
  return layer.place('timestamp', timestampText(rng), style, (w, h) => ({
    x: corner % 2 === 0 ? m : layer.width - w - m,
    y: corner < 2 ? m : layer.height - h - m,
  }));
}

/** The dealer's name on the plate frame: a strip as wide as the plate, right above or below it. */
function addDealer(rng: Rng, layer: Layer, plate: Box): boolean {
  const stripH = Math.max(11, plate.h * rng.float(0.22, 0.32));
  // A frame is a little wider than its plate; small plates get the names that still fit.
  const sizeFor = (t: string) => Math.min(stripH / 1.45, (plate.w * 1.2) / (textWidth(t, 1, false) + 0.6));
  const fitting = DEALERS.filter((t) => sizeFor(t) >= 6);
  const text = rng.pick(fitting.length > 0 ? fitting : DEALERS);
  const size = sizeFor(text);
  const style: TextStyle = { size, mono: false, fill: rng.pick(['#ffffff', '#e8e8e8']), background: rng.pick(['#111111', '#202a44', '#7a1010']) };
  const below = rng.chance(0.5);
  for (const under of [below, !below]) {
    const ok = layer.place('dealer', text, style, (w, h) => ({ x: plate.x + plate.w / 2 - w / 2, y: under ? plate.y + plate.h + 3 : plate.y - h - 3 }));
    if (ok) return true;
  }
  return false;
}

/** One of brand, route board, phone number or street sign, near `near` when given. */
function addOther(rng: Rng, layer: Layer, plateH: number, near: Box | null): boolean {
  const kind = rng.pick(['brand', 'brand', 'route', 'phone', 'sign'] as const);
  // Plate-like sizes half the time, otherwise smaller or much larger.
  const size = Math.max(10, plateH * (rng.chance(0.5) ? rng.float(0.6, 0.8) : rng.pick([rng.float(0.3, 0.45), rng.float(1.2, 2.5)])));
  const styles: Record<typeof kind, () => [string, TextStyle]> = {
    brand: () => {
      const background = rng.pick([null, '#f2f2f2', '#ffcc00']);
      return [rng.pick(BRANDS), { size, mono: false, fill: rng.pick(['#1a1a1a', '#4d148c', '#d40511', background ? '#0033a0' : '#ffffff']), background }];
    },
    route: () => [rng.pick(ROUTES), { size, mono: true, fill: '#ffb000', background: '#0a0a0a' }],
    phone: () => [phoneText(rng), { size, mono: false, fill: '#111111', background: rng.pick(['#ffffff', '#ffdd33', null]) }],
    sign: () => [rng.pick(SIGNS), { size, mono: false, fill: '#ffffff', background: rng.pick(['#0b6e3a', '#1a4f9c', '#b00000']), border: '#ffffff' }],
  };
  const [text, style] = styles[kind]();
  return layer.place(kind, text, style, (w, h) => {
    if (near && rng.chance(0.8)) {
      return { x: near.x + near.w / 2 + rng.float(-3, 3) * near.w - w / 2, y: near.y + near.h / 2 + rng.float(-6, 4) * near.h - h / 2 };
    }
    return { x: rng.float(0, layer.width - w), y: rng.float(0, layer.height - h) };
  });
}

// ---------------------------------------------------------------------------------------------
// Synthetic plates

const FILTER = (sigma: number) => `<defs><filter id="soft"><feGaussianBlur stdDeviation="${sigma.toFixed(2)}"/></filter></defs>`;

/** The axis-aligned box of a w x h rectangle centred at (cx, cy) and turned by `deg` degrees. */
function turnedBox(cx: number, cy: number, w: number, h: number, deg: number): Box {
  const r = (Math.abs(deg) * Math.PI) / 180;
  const bw = w * Math.cos(r) + h * Math.sin(r);
  const bh = w * Math.sin(r) + h * Math.cos(r);
  const x = Math.floor(cx - bw / 2);
  const y = Math.floor(cy - bh / 2);
  return { x, y, w: Math.ceil(cx + bw / 2) - x, h: Math.ceil(cy + bh / 2) - y };
}

interface TwoLine {
  top: string;
  bottom: string;
  /** Width over height. */
  aspect: number;
  country: string;
}

/**
 * A two-line plate: Chilean motorcycle LLL/NN (since 2007), LL/NNN (before), trailer LLLL/NN, or
 * Argentine motorcycle L NNN/LLL (Mercosur) and NNN/LLL (1995–2016).
 */
function twoLineText(rng: Rng): TwoLine {
  const old = CL_OLD_LETTERS;
  return rng.pick([
    () => ({ top: rng.chars(CL_NEW_LETTERS, 3), bottom: rng.digits(2), aspect: 1.2, country: 'CL' }),
    () => ({ top: rng.chars(old, 2), bottom: rng.digits(3), aspect: 1.2, country: 'CL' }),
    () => ({ top: rng.chars(CL_NEW_LETTERS, 4), bottom: rng.digits(2), aspect: 1.6, country: 'CL' }),
    () => ({ top: `${rng.chars(AZ, 1)}${rng.digits(3)}`, bottom: rng.chars(AZ, 3), aspect: 1.25, country: 'AR' }),
    () => ({ top: rng.digits(3), bottom: rng.chars(AZ, 3), aspect: 1.25, country: 'AR' }),
  ])();
}

interface Foreign {
  text: string;
  country: string;
  svg: (b: Box) => string;
}

function bandedPlate(shown: string, band: string, bandText: string, b: Box): string {
  const bandH = b.h * 0.24;
  const size = Math.min(b.h * 0.6, (b.w * 0.9) / textWidth(shown, 1, false));
  return `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="${b.h * 0.08}" fill="#f6f6f2" stroke="#222" stroke-width="${b.h * 0.03}"/>
    <rect x="${b.x}" y="${b.y}" width="${b.w}" height="${bandH}" rx="${b.h * 0.06}" fill="${band}"/>
    <text x="${b.x + b.w / 2}" y="${b.y + bandH * 0.78}" font-family="${SANS}" font-size="${bandH * 0.7}" text-anchor="middle" fill="#fff">${bandText}</text>
    <text x="${b.x + b.w / 2}" y="${b.y + bandH + (b.h - bandH) / 2 + size * 0.365}" font-family="${SANS}" font-weight="bold" font-size="${size}" text-anchor="middle" fill="#111">${shown}</text>`;
}

function plainPlate(shown: string, fill: string, ink: string, b: Box): string {
  const size = Math.min(b.h * 0.7, (b.w * 0.9) / textWidth(shown, 1, false));
  return `<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="${b.h * 0.08}" fill="${fill}" stroke="${ink}" stroke-width="${b.h * 0.04}"/>
    <text x="${b.x + b.w / 2}" y="${b.y + b.h / 2 + size * 0.365}" font-family="${SANS}" font-weight="bold" font-size="${size}" text-anchor="middle" fill="${ink}">${shown}</text>`;
}

const AZ = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function foreignPlate(rng: Rng): Foreign {
  return rng.pick<() => Foreign>([
    () => {
      const t = `${rng.chars(AZ, 2)}${rng.digits(3)}${rng.chars(AZ, 2)}`;
      return { text: t, country: 'AR', svg: (b) => bandedPlate(`${t.slice(0, 2)} ${t.slice(2, 5)} ${t.slice(5)}`, '#1b4fa0', 'REPUBLICA ARGENTINA', b) };
    },
    () => {
      const t = `${rng.chars(AZ, 3)}${rng.digits(3)}`;
      return { text: t, country: 'AR', svg: (b) => plainPlate(`${t.slice(0, 3)} ${t.slice(3)}`, '#111111', '#f4f4f4', b) };
    },
    () => {
      const t = `${rng.digits(4)}${rng.chars(AZ, 3)}`;
      return { text: t, country: 'BO', svg: (b) => bandedPlate(`${t.slice(0, 4)} ${t.slice(4)}`, '#1b4fa0', 'BOLIVIA', b) };
    },
    () => {
      const t = `${rng.chars(AZ, 3)}${rng.digits(3)}`;
      return { text: t, country: 'PE', svg: (b) => bandedPlate(`${t.slice(0, 3)}-${t.slice(3)}`, '#1b4fa0', 'PERU', b) };
    },
    () => {
      const t = `${rng.chars(AZ, 3)}${rng.digits(1)}${rng.chars(AZ, 1)}${rng.digits(2)}`;
      return { text: t, country: 'BR', svg: (b) => bandedPlate(t, '#1b4fa0', 'BRASIL', b) };
    },
  ])();
}

// ---------------------------------------------------------------------------------------------
// Images

/** A pipeline's pixels as three-channel raw (composite adds an alpha channel: dropped here). */
async function toRaw(pipeline: ReturnType<typeof sharp>): Promise<Raw> {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { data, width: info.width, height: info.height };
  const rgb = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (rgb.info.channels !== 3) throw new Error(`busy scenes: ${rgb.info.channels} channels where 3 were expected`);
  return { data: rgb.data, width: rgb.info.width, height: rgb.info.height };
}

const decode = (file: string): Promise<Raw> => toRaw(sharp(file).removeAlpha().toColourspace('srgb'));

/** The image with `box` (grown by `grow` of its height, clipped) blurred beyond reading. */
async function blurAway(img: Raw, box: Box, grow = 0.25): Promise<Raw> {
  const g = Math.round(box.h * grow);
  const x = Math.max(0, box.x - g);
  const y = Math.max(0, box.y - g);
  const r = { left: x, top: y, width: Math.min(img.width, box.x + box.w + g) - x, height: Math.min(img.height, box.y + box.h + g) - y };
  const patch = await toRaw(
    sharp(img.data, RAW(img))
      .extract(r)
      .blur(Math.max(4, box.h / 2)),
  );
  return toRaw(sharp(img.data, RAW(img)).composite([{ input: patch.data, ...RAW(patch), left: r.left, top: r.top }]));
}

async function encode(img: Raw, svg: Buffer, quality: number): Promise<Buffer> {
  return sharp(img.data, RAW(img))
    .composite([{ input: svg, left: 0, top: 0 }])
    .jpeg({ quality })
    .toBuffer();
}

// ---------------------------------------------------------------------------------------------
// Scenes

type Made = Omit<BusyScene, 'id' | 'kind'>;

async function busy(rng: Rng, photo: Photo, img: Raw): Promise<Made> {
  const layer = new Layer(img.width, img.height, [photo.box]);
  addTimestamp(rng, layer);
  addDealer(rng, layer, photo.box);
  const want = rng.int(3, 6);
  for (let i = 0; i < 20 && layer.distractors.length < want; i++) addOther(rng, layer, photo.box.h, photo.box);
  return {
    sources: [photo.source],
    width: img.width,
    height: img.height,
    jpeg: await encode(img, layer.svg(), rng.int(72, 90)),
    plates: [{ text: photo.text, box: photo.box, lines: 1, country: photo.country }],
    distractors: layer.distractors,
  };
}

/** A synthetic plate of w x h centred on the photo's plate (kept inside the frame), turned a little. */
function platePlace(rng: Rng, img: Raw, at: Box, w: number, h: number): { body: (svg: string) => string; box: Box } {
  const deg = rng.float(-4, 4);
  const probe = turnedBox(0, 0, w, h, deg);
  const cx = Math.min(Math.max(at.x + at.w / 2, probe.w / 2 + 2), img.width - probe.w / 2 - 2);
  const cy = Math.min(Math.max(at.y + at.h / 2, probe.h / 2 + 2), img.height - probe.h / 2 - 2);
  return {
    box: turnedBox(cx, cy, w, h, deg),
    body: (svg) => `<g filter="url(#soft)" transform="rotate(${deg.toFixed(2)} ${cx} ${cy}) translate(${cx - w / 2} ${cy - h / 2})">${svg}</g>`,
  };
}

async function twoLine(rng: Rng, photo: Photo, img0: Raw): Promise<Made> {
  const img = await blurAway(img0, photo.box);
  const p = twoLineText(rng);
  // A motorcycle plate is about as tall as a car's (its two lines are each smaller than a car's one).
  const h = Math.min(Math.max(photo.box.h * rng.float(1.0, 1.8), 28), img.height * 0.5);
  const w = Math.min(h * p.aspect, img.width * 0.6);
  const place = platePlace(rng, img, photo.box, w, h);
  const layer = new Layer(img.width, img.height, [place.box]);
  if (rng.chance(0.7)) addTimestamp(rng, layer);
  for (let i = 0, n = rng.int(0, 2); i < n; i++) addOther(rng, layer, h / 2, place.box);
  const plate = place.body(twoLinePlate(p.top, p.bottom, { x: 0, y: 0, w, h }));
  return {
    sources: [photo.source],
    width: img.width,
    height: img.height,
    jpeg: await encode(img, layer.svg(`${FILTER(rng.float(0.3, 1.1))}${plate}`), rng.int(72, 90)),
    plates: [{ text: p.top + p.bottom, box: place.box, lines: 2, country: p.country }],
    distractors: layer.distractors,
  };
}

async function foreign(rng: Rng, photo: Photo, img: Raw): Promise<Made> {
  const f = foreignPlate(rng);
  // Over the original plate, a little larger so that none of it shows.
  const g = Math.round(photo.box.h * 0.12);
  const x = Math.max(0, photo.box.x - g);
  const y = Math.max(0, photo.box.y - g);
  const box = { x, y, w: Math.min(img.width, photo.box.x + photo.box.w + g) - x, h: Math.min(img.height, photo.box.y + photo.box.h + g) - y };
  const layer = new Layer(img.width, img.height, [box]);
  if (rng.chance(0.7)) addTimestamp(rng, layer);
  for (let i = 0, n = rng.int(0, 2); i < n; i++) addOther(rng, layer, box.h, box);
  const plate = `<g filter="url(#soft)">${f.svg(box)}</g>`;
  return {
    sources: [photo.source],
    width: img.width,
    height: img.height,
    jpeg: await encode(img, layer.svg(`${FILTER(rng.float(0.3, 0.8))}${plate}`), rng.int(72, 90)),
    plates: [{ text: f.text, box, lines: 1, country: f.country }],
    distractors: layer.distractors,
  };
}

async function multi(rng: Rng, a: Photo, imgA: Raw, b: Photo, imgB: Raw): Promise<Made> {
  const height = Math.min(720, imgA.height, imgB.height);
  const parts = await Promise.all(
    [
      [a, imgA],
      [b, imgB],
    ].map(async ([p, img]) => {
      const scaled = await toRaw(sharp((img as Raw).data, RAW(img as Raw)).resize({ height }));
      return { photo: p as Photo, data: scaled.data, width: scaled.width, scale: scaled.width / (img as Raw).width };
    }),
  );
  const [l, r] = parts as [(typeof parts)[0], (typeof parts)[0]];
  const width = l.width + r.width;
  const { data } = await toRaw(
    sharp({ create: { width, height, channels: 3, background: '#000000' } }).composite([
      { input: l.data, raw: { width: l.width, height, channels: 3 }, left: 0, top: 0 },
      { input: r.data, raw: { width: r.width, height, channels: 3 }, left: l.width, top: 0 },
    ]),
  );
  const plates: TruthPlate[] = [l, r].map((part, i) => {
    const s = part.scale;
    const pb = part.photo.box;
    const x = Math.floor(pb.x * s) + (i === 0 ? 0 : l.width);
    const y = Math.floor(pb.y * s);
    const box = {
      x,
      y,
      w: Math.min(Math.ceil((pb.x + pb.w) * s) + (i === 0 ? 0 : l.width), i === 0 ? l.width : width) - x,
      h: Math.min(Math.ceil((pb.y + pb.h) * s), height) - y,
    };
    return { text: part.photo.text, box, lines: 1, country: part.photo.country };
  });
  const img = { data, width, height };
  const layer = new Layer(
    width,
    height,
    plates.map((p) => p.box),
  );
  addTimestamp(rng, layer);
  return { sources: [a.source, b.source], width, height, jpeg: await encode(img, layer.svg(), rng.int(72, 90)), plates, distractors: layer.distractors };
}

async function negative(rng: Rng, photo: Photo, img0: Raw): Promise<Made> {
  const blurred = await blurAway(img0, photo.box);
  const width = Math.round(blurred.width * rng.float(0.7, 1));
  const height = Math.round(blurred.height * rng.float(0.7, 1));
  const left = rng.int(0, blurred.width - width);
  const top = rng.int(0, blurred.height - height);
  const img = await toRaw(sharp(blurred.data, RAW(blurred)).extract({ left, top, width, height }));
  const layer = new Layer(width, height, []);
  const near = { x: photo.box.x - left, y: photo.box.y - top, w: photo.box.w, h: photo.box.h };
  if (rng.chance(0.6)) addTimestamp(rng, layer);
  const want = rng.int(3, 5);
  for (let i = 0; i < 20 && layer.distractors.length < want; i++) addOther(rng, layer, photo.box.h, near);
  return { sources: [photo.source], width, height, jpeg: await encode(img, layer.svg(), rng.int(72, 90)), plates: [], distractors: layer.distractors };
}

/** Generates the scenes, kind by kind in SCENE_KINDS order; the same seed gives the same bytes. */
export async function generateBusyScenes({ photosDir, seed, counts }: BusySceneOptions): Promise<BusyScene[]> {
  const photos = await loadPhotos(photosDir);
  const rng = new Rng(seed);
  const cache = new Map<string, Raw>();
  const raw = async (p: Photo) => {
    let r = cache.get(p.file);
    if (!r) {
      r = await decode(p.file);
      cache.set(p.file, r);
    }
    return r;
  };
  const scenes: BusyScene[] = [];
  for (const kind of SCENE_KINDS) {
    for (let i = 0; i < (counts[kind] ?? 0); i++) {
      const a = rng.pick(photos);
      let made: Made;
      if (kind === 'busy') made = await busy(rng, a, await raw(a));
      else if (kind === 'two_line') made = await twoLine(rng, a, await raw(a));
      else if (kind === 'foreign') made = await foreign(rng, a, await raw(a));
      else if (kind === 'multi') {
        let b = rng.pick(photos);
        while (b === a) b = rng.pick(photos);
        made = await multi(rng, a, await raw(a), b, await raw(b));
      } else made = await negative(rng, a, await raw(a));
      scenes.push({ id: `${kind}-${String(i).padStart(3, '0')}`, kind, ...made });
    }
  }
  return scenes;
}

/** The truth of a set as written beside the JPEGs (`truth.json`): everything but the bytes. */
export function truthOf(scenes: readonly BusyScene[]) {
  return scenes.map(({ jpeg: _jpeg, ...rest }) => ({ file: `${rest.id}.jpg`, ...rest }));
}
