import { readFileSync } from 'node:fs';
import { type DecodedImage, resizeImage, toGrey, writeChw } from './image.js';
import { OnnxModel, ort, paddleModelPaths } from './models.js';

/**
 * Stage 2 of the plate reader: the characters in a plate crop. The default recogniser is PP-OCRv4
 * (SVTR-LCNet with a CTC head over 6,623 characters) restricted to Latin letters and digits. Every
 * character comes with its top alternatives, which the plate grammars use to repair look-alike
 * confusions (O/0, B/8, S/5 ...).
 */

export interface CharAlternative {
  char: string;
  prob: number;
}

export interface RecognisedChar {
  best: string;
  prob: number;
  /** Top alternatives (letters and digits only), most likely first, `best` included. */
  alternatives: CharAlternative[];
}

export interface Recognition {
  /** Upper-case letters and digits, as read. */
  text: string;
  /** Mean of the characters' probabilities; 0 when nothing was read. */
  confidence: number;
  chars: RecognisedChar[];
  /**
   * One-line readings only: how far the first character starts from the crop's left edge and the
   * last one ends from its right edge, in line heights. Near 0 the ink reaches the edge of the
   * crop, so the text may go on beyond it (a character cut off by a tight box).
   */
  edges?: { left: number; right: number };
}

export interface RecogniseHint {
  /** 2 when the crop is known to hold two stacked lines, 1 when known to be one. */
  lines?: 1 | 2;
}

export interface PlateRecogniser {
  recognise(crop: DecodedImage, hint?: RecogniseHint): Promise<Recognition>;
  /** Several crops at once (one batched inference where the backend can). */
  recogniseMany?(crops: DecodedImage[], hints?: RecogniseHint[]): Promise<Recognition[]>;
  close?(): Promise<void>;
}

export const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export const EMPTY_RECOGNITION: Recognition = Object.freeze({ text: '', confidence: 0, chars: [] }) as Recognition;

/** Index into {@link ALPHABET} for a dictionary entry, or -1: ASCII and full-width letters and digits, any case. */
export function alphabetIndex(entry: string): number {
  if (entry.length !== 1) return -1;
  let code = entry.charCodeAt(0);
  if (code >= 0xff01 && code <= 0xff5e) code -= 0xfee0; // full-width forms
  let ch = String.fromCharCode(code);
  if (!/^[A-Za-z0-9]$/.test(ch)) return -1;
  ch = ch.toUpperCase();
  return ALPHABET.indexOf(ch);
}

/** One character out of CTC decoding, with the frames it covered. */
export interface DecodedChar extends RecognisedChar {
  /** First and last frame of the run, and the frame where it peaked. */
  start: number;
  end: number;
  peak: number;
  /** Probability that the peak frame shows any letter or digit (rather than blank or other). */
  charness: number;
}

export interface CtcLine {
  chars: DecodedChar[];
  /** Number of frames that belong to the line (the rest is batch padding). */
  frames: number;
}

/**
 * Greedy CTC decoding of one sequence of per-frame distributions. Case variants (and full-width
 * forms) of a letter are added up; every class that is not a letter or digit counts as one
 * "other" class that, like the blank, emits nothing and separates repeated characters.
 */
export function ctcDecode(probs: ArrayLike<number>, offset: number, frames: number, classes: number, classMap: Int8Array): CtcLine {
  const { letters, letterIndex, others } = classGroups(classMap, classes);
  const acc = new Float64Array(ALPHABET.length);
  const chars: DecodedChar[] = [];
  let prev = -1; // -1 blank, -2 other, else alphabet index
  let current: DecodedChar | null = null;
  for (let t = 0; t < frames; t++) {
    const base = offset + t * classes;
    acc.fill(0);
    const blank = probs[base] as number;
    for (let i = 0; i < letters.length; i++) acc[letterIndex[i]!]! += probs[base + letters[i]!] as number;
    let other = 0;
    for (let r = 0; r < others.length; r += 2) {
      for (let c = base + others[r]!, end = base + others[r + 1]!; c < end; c++) {
        const p = probs[c] as number;
        if (p > other) other = p;
      }
    }
    let label = blank >= other ? -1 : -2;
    let best = Math.max(blank, other);
    let charness = 0;
    for (let k = 0; k < acc.length; k++) {
      charness += acc[k]!;
      if (acc[k]! > best) {
        best = acc[k]!;
        label = k;
      }
    }
    if (label >= 0) {
      if (label !== prev || current === null) {
        current = { best: ALPHABET[label]!, prob: best, alternatives: topAlternatives(acc, 3), start: t, end: t, peak: t, charness };
        chars.push(current);
      } else {
        current.end = t;
        if (best > current.prob) {
          current.prob = best;
          current.peak = t;
          current.charness = charness;
          current.alternatives = topAlternatives(acc, 3);
        }
      }
    } else {
      current = null;
    }
    prev = label;
  }
  return { chars, frames };
}

interface ClassGroups {
  classes: number;
  /** Classes that are a letter or digit, ascending, and the alphabet index of each. */
  letters: Int32Array;
  letterIndex: Int32Array;
  /** Every other class but the blank, as [start, end) ranges, so that they are scanned in tight loops. */
  others: Int32Array;
}

const classGroupCache = new WeakMap<Int8Array, ClassGroups>();

function classGroups(classMap: Int8Array, classes: number): ClassGroups {
  const cached = classGroupCache.get(classMap);
  if (cached?.classes === classes) return cached;
  const letters: number[] = [];
  const letterIndex: number[] = [];
  const others: number[] = [];
  for (let c = 1; c < classes; c++) {
    const k = classMap[c] ?? -1;
    if (k >= 0) {
      letters.push(c);
      letterIndex.push(k);
    } else if (others.length > 0 && others[others.length - 1] === c) {
      others[others.length - 1] = c + 1;
    } else {
      others.push(c, c + 1);
    }
  }
  const groups = { classes, letters: Int32Array.from(letters), letterIndex: Int32Array.from(letterIndex), others: Int32Array.from(others) };
  classGroupCache.set(classMap, groups);
  return groups;
}

/** The `n` most likely characters, most likely first (ties: alphabet order). */
function topAlternatives(acc: Float64Array, n: number): CharAlternative[] {
  const top: number[] = [];
  for (let k = 0; k < acc.length; k++) {
    let at = top.length;
    while (at > 0 && acc[k]! > acc[top[at - 1]!]!) at--;
    if (at < n) {
      top.splice(at, 0, k);
      if (top.length > n) top.pop();
    }
  }
  return top.map((k) => ({ char: ALPHABET[k]!, prob: round4(acc[k]!) }));
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

export function toRecognition(chars: RecognisedChar[]): Recognition {
  const clean = chars.map((c) => ({ best: c.best, prob: round4(c.prob), alternatives: c.alternatives }));
  return {
    text: clean.map((c) => c.best).join(''),
    confidence: clean.length ? round4(clean.reduce((s, c) => s + c.prob, 0) / clean.length) : 0,
    chars: clean,
  };
}

/**
 * Drop what the recogniser itself doubts is a character at all. At every frame the model spreads
 * its belief over blank, letters and digits, and everything else; a real but blurred character
 * keeps most of that belief on letters and digits (it is unsure *which* character), while an
 * emblem, seal or band symbol before or between the characters gets a weak, split reading. The
 * weakest position is dropped when its letter-and-digit share is below `minCharness` and at least
 * four characters remain. One at most: two weak positions are more likely a blurred plate than
 * two emblems. The last position is kept whatever its share: a faint narrow final character
 * (I, 1) reads like that too, and grammars can still drop a border character.
 */
export function dropNonCharacters<T extends { charness: number }>(chars: T[], minCharness = 0.85): T[] {
  if (chars.length < 5) return chars;
  let weakest = -1;
  for (let i = 0; i < chars.length - 1; i++) {
    if (chars[i]!.charness < minCharness && (weakest < 0 || chars[i]!.charness < chars[weakest]!.charness)) weakest = i;
  }
  return weakest < 0 ? chars : chars.filter((_, i) => i !== weakest);
}

export interface PaddleRecogniserOptions {
  threads?: number;
  modelPath?: string;
  keysPath?: string;
  /** Crops with width/height below this are also read as two stacked lines. */
  twoLineAspect?: number;
  /** Most line images per inference. */
  batchSize?: number;
  /** Narrowest input (pixels at height 48); narrower lines are padded on the right. */
  minWidth?: number;
  /** Widest input; wider lines are squeezed. */
  maxWidth?: number;
  /** Drop positions the model doubts are characters (emblems, seals, band symbols). Default on. */
  dropNonCharacters?: boolean;
}

const REC_HEIGHT = 48;
const REC_LAYOUT = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], order: 'bgr' } as const;

interface LineJob {
  /** The line as cropped, and resized to the model's height (filled in by `run`). */
  crop: DecodedImage;
  img?: DecodedImage;
  width: number;
  result?: CtcLine;
}

/** PP-OCRv4 recognition, batched. */
export class PaddleRecogniser implements PlateRecogniser {
  private readonly classMap: Int8Array;

  private constructor(
    readonly model: OnnxModel,
    keys: string[],
    private readonly opts: PaddleRecogniserOptions,
  ) {
    // Class 0 is the CTC blank, then the dictionary, then a space.
    const classes = ['', ...keys, ' '];
    this.classMap = Int8Array.from(classes, (k, i) => (i === 0 ? -1 : alphabetIndex(k)));
  }

  static async create(opts: PaddleRecogniserOptions = {}): Promise<PaddleRecogniser> {
    const paths = opts.modelPath && opts.keysPath ? null : paddleModelPaths();
    const keysText = readFileSync(opts.keysPath ?? paths!.keys, 'utf8');
    const keys = keysText.split(/\r?\n/);
    if (keys[keys.length - 1] === '') keys.pop();
    const model = await OnnxModel.load(opts.modelPath ?? paths!.rec, opts.threads);
    return new PaddleRecogniser(model, keys, opts);
  }

  async recognise(crop: DecodedImage, hint?: RecogniseHint): Promise<Recognition> {
    return (await this.recogniseMany([crop], hint ? [hint] : undefined))[0]!;
  }

  async recogniseMany(crops: DecodedImage[], hints: RecogniseHint[] = []): Promise<Recognition[]> {
    const twoLineAspect = this.opts.twoLineAspect ?? 2.2;
    // Every crop becomes one or more readings, each made of one or two line images.
    const plans: Array<{ whole?: LineJob; split?: [LineJob, LineJob] }> = [];
    const jobs: LineJob[] = [];
    for (let i = 0; i < crops.length; i++) {
      const crop = crops[i]!;
      const lines = hints[i]?.lines;
      const plan: { whole?: LineJob; split?: [LineJob, LineJob] } = {};
      if (crop.width < 4 || crop.height < 4) {
        plans.push(plan);
        continue;
      }
      if (lines !== 2) plan.whole = this.lineJob(crop);
      if (lines === 2 || (lines === undefined && crop.width / crop.height < twoLineAspect)) {
        const [top, bottom] = splitLines(crop);
        plan.split = [this.lineJob(top), this.lineJob(bottom)];
      }
      for (const j of [plan.whole, ...(plan.split ?? [])]) if (j) jobs.push(j);
      plans.push(plan);
    }
    await this.run(jobs);
    const clean = (l: CtcLine | undefined) => {
      const chars = l?.chars ?? [];
      return this.opts.dropNonCharacters === false ? chars : dropNonCharacters(chars);
    };
    return plans.map((p) => {
      const candidates: Recognition[] = [];
      if (p.whole) {
        const line = p.whole.result;
        const chars = clean(line);
        const whole = toRecognition(chars);
        if (line && chars.length > 0) {
          // A frame of the CTC output covers 8 pixels of the 48-pixel-high line: 1/6 of its height.
          const frame = 8 / REC_HEIGHT;
          whole.edges = { left: round4(chars[0]!.start * frame), right: round4((line.frames - 1 - chars[chars.length - 1]!.end) * frame) };
        }
        candidates.push(whole);
      }
      if (p.split) candidates.push(toRecognition([...clean(p.split[0].result), ...clean(p.split[1].result)]));
      // One line or two: a plate-like reading first (one line of a two-line plate alone rarely
      // is), then the more confident.
      candidates.sort((a, b) => Number(isPlateLike(b.text)) - Number(isPlateLike(a.text)) || b.confidence - a.confidence);
      return candidates[0] ?? EMPTY_RECOGNITION;
    });
  }

  private lineJob(crop: DecodedImage): LineJob {
    const maxWidth = this.opts.maxWidth ?? 960;
    return { crop, width: Math.max(16, Math.min(maxWidth, Math.round((crop.width * REC_HEIGHT) / crop.height))) };
  }

  /** Batches of similar widths, each padded to its widest member. */
  private async run(jobs: LineJob[]): Promise<void> {
    const batchSize = this.opts.batchSize ?? 8;
    const minWidth = this.opts.minWidth ?? 0;
    // libvips resizes on its own threads: start them all at once rather than one after another.
    // (A resize in JavaScript would save the thread hop, but readings move with the resampler.)
    await Promise.all(
      jobs.map(async (j) => {
        j.img = await resizeImage(j.crop, j.width, REC_HEIGHT);
      }),
    );
    const order = jobs.slice().sort((a, b) => a.width - b.width);
    let i = 0;
    while (i < order.length) {
      const batch = [order[i]!];
      const first = order[i]!.width;
      i++;
      while (i < order.length && batch.length < batchSize && order[i]!.width <= Math.max(first * 1.5, first + 64)) batch.push(order[i++]!);
      const width = Math.ceil(Math.max(minWidth, ...batch.map((j) => j.width)) / 8) * 8;
      const plane = 3 * REC_HEIGHT * width;
      const input = new Float32Array(batch.length * plane); // zeros: mid-grey after normalisation
      for (const [b, j] of batch.entries()) writeChw(j.img!, REC_LAYOUT, input, b * plane, width, REC_HEIGHT);
      const out = await this.model.run({ [this.model.inputNames[0]!]: new ort.Tensor('float32', input, [batch.length, 3, REC_HEIGHT, width]) });
      const probs = out[this.model.outputNames[0]!]!;
      const [, T, C] = probs.dims as number[];
      batch.forEach((j, b) => {
        const frames = Math.min(T!, Math.ceil((T! * j.width) / width));
        j.result = ctcDecode(probs.data as Float32Array, b * T! * C!, frames, C!, this.classMap);
      });
    }
  }

  async close(): Promise<void> {
    await this.model.release();
  }
}

/** Whether a reading looks like a plate at all: 4 to 10 letters and digits, both present. */
export function isPlateLike(text: string): boolean {
  return /^[A-Z0-9]{4,10}$/.test(text) && /[A-Z]/.test(text) && /[0-9]/.test(text);
}

/**
 * Split a crop of two stacked lines at the quietest row (least horizontal change in brightness)
 * in its middle band.
 */
export function splitLines(crop: DecodedImage): [DecodedImage, DecodedImage] {
  const { width, height } = crop;
  const grey = toGrey(crop);
  const energy = new Float64Array(height);
  for (let y = 0; y < height; y++) {
    let e = 0;
    for (let x = 1; x < width; x++) e += Math.abs(grey[y * width + x]! - grey[y * width + x - 1]!);
    energy[y] = e;
  }
  let split = height >> 1;
  let best = Infinity;
  for (let y = Math.floor(height * 0.3); y <= Math.ceil(height * 0.7); y++) {
    const e = (energy[y - 1] ?? 0) + energy[y]! + (energy[y + 1] ?? 0);
    if (e < best) {
      best = e;
      split = y;
    }
  }
  split = Math.max(2, Math.min(height - 2, split));
  const rows = (y0: number, y1: number): DecodedImage => ({ width, height: y1 - y0, data: crop.data.slice(y0 * width * 3, y1 * width * 3) });
  return [rows(0, split), rows(split, height)];
}
