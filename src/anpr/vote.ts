import type { RecognisedChar } from './grammars/types.js';
import { normalisePlateText } from './plate-text.js';

/**
 * Multi-frame voting. A camera sees a passing plate in many consecutive frames and misreads some
 * characters in some of them; one `plate.read` event per passage, with each character chosen by a
 * confidence-weighted vote over the frames, is both more accurate and far less traffic than one
 * event per frame.
 *
 * Nothing here reads a clock or sets a timer on its own: the caller feeds reads with their frame's
 * monotonic time and calls `flush()` periodically, so behaviour is deterministic under test.
 */

/** Pixel rectangle of the plate in the frame: left, top, width, height. Zero size means unknown. */
export type PlateBox = [x: number, y: number, width: number, height: number];

export interface PlateReadInput {
  /** The plate as read in this frame (normalised here: case, separators). */
  text: string;
  /** Per-character recogniser output, aligned with `text` when available. */
  chars: RecognisedChar[] | null;
  /** Confidence of the whole reading, 0..1. */
  confidence: number;
  box: PlateBox;
  /** Monotonic time of the frame, milliseconds. */
  frameMono: number;
  /** Grammar format the reading matched, if any. */
  format?: string;
  /** Country of the grammar that read it (`cl`, `ar`...), if any. */
  country?: string;
}

export interface VotedRead {
  cameraId: string;
  text: string;
  /** Geometric mean of `perCharConfidence`. */
  confidence: number;
  /** Per position: the summed confidence of the frames that read the winning character, divided by the frames that read that position. */
  perCharConfidence: number[];
  /** The format (confidence-weighted) most frames that read the voted text gave; else most frames; null when no frame gave one. */
  format: string | null;
  /** Country that goes with `format` (the same frames' reading); null when they gave none. */
  country: string | null;
  firstSeenMono: number;
  lastSeenMono: number;
  /** Frames that contributed a read, including reads not kept for voting (see MAX_READS_PER_TRACK). */
  frames: number;
  /** Box of the best frame: the most confident one that read the voted text (or any, if none did). */
  box: PlateBox;
  /** Index of that frame among the track's frames, 0-based in arrival order. */
  bestFrameIndex: number;
  /** `frameMono` of that frame, so the caller can find the frame it kept as evidence. */
  bestFrameMono: number;
}

export interface PlateTrackerOptions {
  /** A voted text already emitted for a camera is not emitted again until this long after its last frame. */
  dedupWindowMs: number;
  /** A track closes after this long without a read, and only reads within it join a track. */
  maxGapMs: number;
  /** Tracks with fewer frames are dropped as noise. Default 1. */
  minFrames?: number;
  /**
   * A track is closed (and a new one started) once it is this old, so a plate that never leaves
   * the view (a parked car, a queue at a light) is still reported. Default 10 s.
   */
  maxTrackMs?: number;
  clock: { monoNow(): number };
}

export interface PlateTrackerStats {
  reads: number;
  /** Reads with no letters or digits at all. */
  ignored: number;
  openTracks: number;
  emitted: number;
  suppressedDuplicates: number;
  /** Closed tracks with fewer than `minFrames` frames. */
  discardedShort: number;
}

/** Reads kept per track for voting; past this, a new read replaces the least confident one. */
const MAX_READS_PER_TRACK = 64;
/** Distinct texts whose weight a track follows to know its leading text. */
const MAX_TEXTS_PER_TRACK = 32;
/** Open tracks per camera; past this, the longest-unseen one is closed early. */
const MAX_OPEN_TRACKS_PER_CAMERA = 32;
/** Differing texts only join a track if the boxes are this close: centre distance in plate sizes. */
const NEAR_FACTOR = 2;
const PROB_FLOOR = 1e-3;
/** Weight of a character the reading has but the recogniser did not propose (a grammar repair). */
const UNPROPOSED_FACTOR = 0.5;
const DEFAULT_MAX_TRACK_MS = 10_000;

interface StoredRead {
  text: string;
  weights: number[];
  confidence: number;
  box: PlateBox;
  frameMono: number;
  format: string | undefined;
  country: string | undefined;
  frameIndex: number;
}

interface Track {
  cameraId: string;
  seq: number;
  reads: StoredRead[];
  frames: number;
  firstSeen: number;
  lastSeen: number;
  lastFrameMono: number;
  lastText: string;
  lastBox: PlateBox;
  leaderText: string;
  textWeights: Map<string, number>;
}

const clamp = (p: number): number => (Number.isFinite(p) ? Math.min(1, Math.max(PROB_FLOOR, p)) : PROB_FLOOR);

/** Edit distance above which two texts are different plates: 1 up to 5 characters, then 2. */
export const maxTextDistance = (length: number): number => (length <= 5 ? 1 : 2);

/** Levenshtein distance, stopping early once it exceeds `limit`. */
export function editDistance(a: string, b: string, limit = Number.POSITIVE_INFINITY): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (cur[j]! < rowMin) rowMin = cur[j]!;
    }
    if (rowMin > limit) return limit + 1;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** Pairs (index in `a`, index in `b`) of characters a minimal edit script keeps or substitutes. */
function alignment(a: string, b: string): Array<[number, number]> {
  const w = b.length + 1;
  const d = new Int32Array((a.length + 1) * w);
  for (let i = 0; i <= a.length; i++) d[i * w] = i;
  for (let j = 0; j <= b.length; j++) d[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i * w + j] = Math.min(d[(i - 1) * w + j]! + 1, d[i * w + j - 1]! + 1, d[(i - 1) * w + j - 1]! + cost);
    }
  }
  const pairs: Array<[number, number]> = [];
  let i = a.length;
  let j = b.length;
  while (i > 0 && j > 0) {
    const here = d[i * w + j]!;
    const cost = a[i - 1] === b[j - 1] ? 0 : 1;
    if (here === d[(i - 1) * w + j - 1]! + cost) {
      pairs.push([i - 1, j - 1]);
      i--;
      j--;
    } else if (here === d[(i - 1) * w + j]! + 1) i--;
    else j--;
  }
  return pairs.reverse();
}

const boxKnown = (b: PlateBox): boolean => b[2] > 0 && b[3] > 0;

function centreDistance(a: PlateBox, b: PlateBox): number {
  return Math.hypot(a[0] + a[2] / 2 - (b[0] + b[2] / 2), a[1] + a[3] / 2 - (b[1] + b[3] / 2));
}

/** Whether two boxes can be the same plate a few frames apart; unknown boxes do not object. */
function near(a: PlateBox, b: PlateBox): boolean {
  if (!boxKnown(a) || !boxKnown(b)) return true;
  return centreDistance(a, b) <= NEAR_FACTOR * Math.max(a[2], a[3], b[2], b[3]);
}

/** Confidence of each character of `text`, from the recogniser's output when it lines up. */
function charWeights(read: PlateReadInput, text: string): number[] {
  const whole = clamp(read.confidence);
  const chars = read.chars;
  const out = new Array<number>(text.length).fill(whole);
  if (chars === null) return out;
  // A grammar may have dropped one border character: line up on whichever end matches better.
  const extra = chars.length - text.length;
  if (extra !== 0 && extra !== 1) return out;
  let offset = 0;
  if (extra === 1) {
    let atStart = 0;
    let atEnd = 0;
    for (let i = 0; i < text.length; i++) {
      if (normalisePlateText(chars[i]!.best) === text[i]) atStart++;
      if (normalisePlateText(chars[i + 1]!.best) === text[i]) atEnd++;
    }
    offset = atEnd > atStart ? 1 : 0;
  }
  for (let i = 0; i < text.length; i++) {
    const rc = chars[i + offset]!;
    const ch = text[i]!;
    if (normalisePlateText(rc.best) === ch) out[i] = clamp(rc.prob);
    else {
      const alt = rc.alternatives.find((a) => normalisePlateText(a.char) === ch);
      out[i] = alt !== undefined ? clamp(alt.prob) : whole * UNPROPOSED_FACTOR;
    }
  }
  return out;
}

interface Tally {
  weight: number;
  count: number;
}

function tallyAdd(m: Map<string, Tally>, key: string, weight: number): void {
  const t = m.get(key);
  if (t === undefined) m.set(key, { weight, count: 1 });
  else {
    t.weight += weight;
    t.count++;
  }
}

/** The heaviest key; ties go to more supporters, then the smaller key, so results never depend on order. */
function winner(m: Map<string, Tally>): [string, Tally] | undefined {
  let best: [string, Tally] | undefined;
  for (const entry of m) {
    if (best === undefined) best = entry;
    else {
      const [k, t] = entry;
      const [bk, bt] = best;
      if (t.weight > bt.weight || (t.weight === bt.weight && (t.count > bt.count || (t.count === bt.count && k < bk)))) best = entry;
    }
  }
  return best;
}

export class PlateTracker {
  readonly #dedupWindowMs: number;
  readonly #maxGapMs: number;
  readonly #minFrames: number;
  readonly #maxTrackMs: number;
  readonly #clock: { monoNow(): number };
  readonly #open = new Map<string, Track[]>();
  /** Tracks closed early (camera over its track limit), emitted at the next flush. */
  #closed: Track[] = [];
  /** Last frame time of each emitted (camera, text), for the dedup window. */
  readonly #emitted = new Map<string, number>();
  #seq = 0;
  #stats = { reads: 0, ignored: 0, emitted: 0, suppressedDuplicates: 0, discardedShort: 0 };

  constructor(opts: PlateTrackerOptions) {
    if (!(opts.maxGapMs > 0)) throw new Error('maxGapMs must be positive');
    if (!(opts.dedupWindowMs >= 0)) throw new Error('dedupWindowMs must be zero or positive');
    const minFrames = opts.minFrames ?? 1;
    if (!Number.isInteger(minFrames) || minFrames < 1) throw new Error('minFrames must be a positive integer');
    const maxTrackMs = opts.maxTrackMs ?? DEFAULT_MAX_TRACK_MS;
    if (!(maxTrackMs > 0)) throw new Error('maxTrackMs must be positive');
    this.#dedupWindowMs = opts.dedupWindowMs;
    this.#maxGapMs = opts.maxGapMs;
    this.#minFrames = minFrames;
    this.#maxTrackMs = maxTrackMs;
    this.#clock = opts.clock;
  }

  add(cameraId: string, read: PlateReadInput): void {
    this.#stats.reads++;
    const text = normalisePlateText(read.text);
    if (text.length === 0) {
      this.#stats.ignored++;
      return;
    }
    const tracks = this.#open.get(cameraId) ?? [];
    const track = this.#match(tracks, text, read) ?? this.#start(cameraId, tracks, read.frameMono);
    this.#append(track, text, read);
  }

  /** Closes tracks idle for more than `maxGapMs` (or older than `maxTrackMs`) and returns their votes, oldest first. */
  flush(nowMono: number = this.#clock.monoNow()): VotedRead[] {
    const closing = this.#closed;
    this.#closed = [];
    for (const [cameraId, tracks] of this.#open) {
      const keep: Track[] = [];
      for (const t of tracks) {
        if (nowMono - t.lastSeen > this.#maxGapMs || nowMono - t.firstSeen >= this.#maxTrackMs) closing.push(t);
        else keep.push(t);
      }
      if (keep.length > 0) this.#open.set(cameraId, keep);
      else this.#open.delete(cameraId);
    }
    closing.sort((a, b) => a.firstSeen - b.firstSeen || a.seq - b.seq);
    const out: VotedRead[] = [];
    for (const t of closing) {
      if (t.frames < this.#minFrames) {
        this.#stats.discardedShort++;
        continue;
      }
      const voted = vote(t);
      const key = `${t.cameraId}\u0000${voted.text}`;
      const previous = this.#emitted.get(key);
      // Suppressed passages do not extend the window: a plate that stays in view is still
      // reported about once per window, so the centre learns it is still there.
      if (previous !== undefined && voted.firstSeenMono - previous <= this.#dedupWindowMs) {
        this.#stats.suppressedDuplicates++;
        continue;
      }
      this.#emitted.set(key, voted.lastSeenMono);
      this.#stats.emitted++;
      out.push(voted);
    }
    if (Number.isFinite(nowMono)) {
      // A track still open may have started up to maxTrackMs ago; keep what it could be compared with.
      const horizon = nowMono - this.#dedupWindowMs - this.#maxTrackMs - this.#maxGapMs;
      for (const [key, last] of this.#emitted) if (last < horizon) this.#emitted.delete(key);
    }
    return out;
  }

  /** Closes and votes every open track regardless of age, e.g. when the camera stops. */
  drain(): VotedRead[] {
    return this.flush(Number.POSITIVE_INFINITY);
  }

  stats(): PlateTrackerStats {
    let openTracks = 0;
    for (const tracks of this.#open.values()) openTracks += tracks.length;
    return { ...this.#stats, openTracks };
  }

  #match(tracks: Track[], text: string, read: PlateReadInput): Track | undefined {
    let best: Track | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    let bestCentre = Number.POSITIVE_INFINITY;
    for (const t of tracks) {
      if (read.frameMono - t.lastSeen > this.#maxGapMs) continue;
      if (read.frameMono - t.firstSeen >= this.#maxTrackMs) continue;
      if (t.lastFrameMono === read.frameMono) continue; // one plate appears once per frame
      const limit = maxTextDistance(Math.max(text.length, t.leaderText.length));
      const distance = Math.min(editDistance(text, t.lastText, limit), editDistance(text, t.leaderText, limit));
      if (distance > limit) continue;
      // Equal text is the same plate wherever it moved; a near miss must also be where the plate was.
      if (distance > 0 && !near(read.box, t.lastBox)) continue;
      const centre = boxKnown(read.box) && boxKnown(t.lastBox) ? centreDistance(read.box, t.lastBox) : 0;
      if (distance < bestDistance || (distance === bestDistance && centre < bestCentre)) {
        best = t;
        bestDistance = distance;
        bestCentre = centre;
      }
    }
    return best;
  }

  #start(cameraId: string, tracks: Track[], frameMono: number): Track {
    if (tracks.length >= MAX_OPEN_TRACKS_PER_CAMERA) {
      let oldest = 0;
      for (let i = 1; i < tracks.length; i++) if (tracks[i]!.lastSeen < tracks[oldest]!.lastSeen) oldest = i;
      this.#closed.push(...tracks.splice(oldest, 1));
    }
    const track: Track = {
      cameraId,
      seq: this.#seq++,
      reads: [],
      frames: 0,
      firstSeen: frameMono,
      lastSeen: frameMono,
      lastFrameMono: Number.NaN,
      lastText: '',
      lastBox: [0, 0, 0, 0],
      leaderText: '',
      textWeights: new Map(),
    };
    tracks.push(track);
    this.#open.set(cameraId, tracks);
    return track;
  }

  #append(t: Track, text: string, read: PlateReadInput): void {
    const stored: StoredRead = {
      text,
      weights: charWeights(read, text),
      confidence: clamp(read.confidence),
      box: read.box,
      frameMono: read.frameMono,
      format: read.format,
      country: read.country,
      frameIndex: t.frames,
    };
    t.frames++;
    t.firstSeen = Math.min(t.firstSeen, read.frameMono);
    t.lastSeen = Math.max(t.lastSeen, read.frameMono);
    t.lastFrameMono = read.frameMono;
    t.lastText = text;
    if (boxKnown(read.box)) t.lastBox = read.box;
    if (t.reads.length < MAX_READS_PER_TRACK) t.reads.push(stored);
    else {
      let weakest = 0;
      for (let i = 1; i < t.reads.length; i++) if (t.reads[i]!.confidence < t.reads[weakest]!.confidence) weakest = i;
      if (t.reads[weakest]!.confidence < stored.confidence) t.reads[weakest] = stored;
    }
    const w = t.textWeights.get(text);
    if (w !== undefined || t.textWeights.size < MAX_TEXTS_PER_TRACK) t.textWeights.set(text, (w ?? 0) + stored.confidence);
    if (t.leaderText === '' || (t.textWeights.get(text) ?? 0) > (t.textWeights.get(t.leaderText) ?? 0)) t.leaderText = text;
  }
}

/** Per-character, confidence-weighted vote over a closed track's reads. */
function vote(t: Track): VotedRead {
  // The length most (confidence-weighted) frames agree on; other lengths are aligned to it.
  const lengths = new Map<string, Tally>();
  for (const r of t.reads) tallyAdd(lengths, String(r.text.length), r.confidence);
  const length = Number(winner(lengths)![0]);

  const positions = Array.from({ length }, () => new Map<string, Tally>());
  const voters = new Array<number>(length).fill(0);
  for (const r of t.reads) {
    if (r.text.length !== length) continue;
    for (let i = 0; i < length; i++) {
      tallyAdd(positions[i]!, r.text[i]!, r.weights[i]!);
      voters[i]!++;
    }
  }
  const provisional = positions.map((m) => winner(m)![0]).join('');
  for (const r of t.reads) {
    if (r.text.length === length) continue;
    for (const [from, to] of alignment(r.text, provisional)) {
      tallyAdd(positions[to]!, r.text[from]!, r.weights[from]!);
      voters[to]!++;
    }
  }

  let text = '';
  const perCharConfidence: number[] = [];
  let logSum = 0;
  for (let i = 0; i < length; i++) {
    const [ch, tally] = winner(positions[i]!)!;
    text += ch;
    const c = Math.min(1, tally.weight / voters[i]!);
    perCharConfidence.push(c);
    logSum += Math.log(Math.max(PROB_FLOOR, c));
  }

  const agreeing = t.reads.filter((r) => r.text === text);
  const pool = agreeing.length > 0 ? agreeing : t.reads;
  let best = pool[0]!;
  for (const r of pool) if (r.confidence > best.confidence || (r.confidence === best.confidence && r.frameIndex < best.frameIndex)) best = r;

  // Format and country are voted as a pair: `old` is a format of several countries.
  const formats = new Map<string, Tally>();
  const formatKey = (r: StoredRead) => `${r.format}\u0000${r.country ?? ''}`;
  for (const r of agreeing) if (r.format !== undefined) tallyAdd(formats, formatKey(r), r.confidence);
  if (formats.size === 0) for (const r of t.reads) if (r.format !== undefined) tallyAdd(formats, formatKey(r), r.confidence);
  const [format = null, country = null] = winner(formats)?.[0].split('\u0000') ?? [];

  return {
    cameraId: t.cameraId,
    text,
    confidence: Math.exp(logSum / length),
    perCharConfidence,
    format,
    country: country || null,
    firstSeenMono: t.firstSeen,
    lastSeenMono: t.lastSeen,
    frames: t.frames,
    box: best.box,
    bestFrameIndex: best.frameIndex,
    bestFrameMono: best.frameMono,
  };
}
