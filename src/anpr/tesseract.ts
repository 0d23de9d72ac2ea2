import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import Tesseract from 'tesseract.js';
import type { DecodedImage } from './image.js';
import { tesseractLangPath } from './models.js';
import { ALPHABET, type PlateRecogniser, type RecogniseHint, type RecognisedChar, type Recognition, splitLines, toRecognition } from './recogniser.js';

/**
 * Alternative recogniser: Tesseract (LSTM, English "best_int" data) through tesseract.js, in
 * single-line mode with a letters-and-digits whitelist. Slower and less accurate on plates than
 * PP-OCR, but independent of it (a second opinion, or a fallback where ONNX Runtime is not
 * available). The traineddata is read from the local npm package; nothing is ever downloaded.
 */

export interface TesseractOptions {
  /** Directory with `eng.traineddata.gz`; the `@tesseract.js-data/eng` package by default. */
  langPath?: string;
  /** Where tesseract.js keeps its unpacked copy of the data. */
  cachePath?: string;
  /** tesseract.js worker script (tests use a wrapper that blocks network access). */
  workerPath?: string;
  /** Height in pixels the crop is scaled to before reading (default 96). */
  lineHeight?: number;
}

export class TesseractRecogniser implements PlateRecogniser {
  private constructor(
    private readonly worker: Tesseract.Worker,
    private readonly lineHeight: number,
  ) {}

  static async create(opts: TesseractOptions = {}): Promise<TesseractRecogniser> {
    const langPath = opts.langPath ?? tesseractLangPath();
    const cachePath = opts.cachePath ?? join(tmpdir(), 'vigia-tesseract');
    mkdirSync(cachePath, { recursive: true });
    const worker = await Tesseract.createWorker(
      'eng',
      Tesseract.OEM.LSTM_ONLY,
      {
        langPath,
        gzip: true,
        cachePath,
        ...(opts.workerPath ? { workerPath: opts.workerPath } : {}),
        errorHandler: () => undefined,
      },
      // Plates are not words: no dictionaries.
      { load_system_dawg: '0', load_freq_dawg: '0' },
    );
    await worker.setParameters({
      tessedit_pageseg_mode: Tesseract.PSM.SINGLE_LINE,
      tessedit_char_whitelist: ALPHABET,
      user_defined_dpi: '300',
    });
    return new TesseractRecogniser(worker, opts.lineHeight ?? 96);
  }

  async recognise(crop: DecodedImage, hint?: RecogniseHint): Promise<Recognition> {
    if (crop.width < 4 || crop.height < 4) return toRecognition([]);
    if (hint?.lines === 2) {
      const [top, bottom] = splitLines(crop);
      return toRecognition([...(await this.#line(top)), ...(await this.#line(bottom))]);
    }
    return toRecognition(await this.#line(crop));
  }

  async #line(crop: DecodedImage): Promise<RecognisedChar[]> {
    const h = this.lineHeight;
    const border = Math.round(h / 4);
    const png = await sharp(crop.data, { raw: { width: crop.width, height: crop.height, channels: 3 } })
      .resize({ height: h })
      .greyscale()
      .normalise()
      .extend({ top: border, bottom: border, left: border, right: border, extendWith: 'copy' })
      .png()
      .toBuffer();
    const { data } = await this.worker.recognize(png, {}, { text: true, blocks: true });
    const symbols = (data.blocks ?? []).flatMap((b) => b.paragraphs.flatMap((p) => p.lines.flatMap((l) => l.words.flatMap((w) => w.symbols))));
    const chars: RecognisedChar[] = [];
    for (const s of symbols) {
      const ch = s.text.toUpperCase();
      if (!ALPHABET.includes(ch) || ch.length !== 1) continue;
      const prob = Math.max(0, Math.min(1, s.confidence / 100));
      chars.push({ best: ch, prob, alternatives: [{ char: ch, prob }] });
    }
    if (chars.length === 0) {
      // No symbol detail: the whole line at its confidence.
      const prob = Math.max(0, Math.min(1, data.confidence / 100));
      for (const ch of data.text.toUpperCase()) if (ALPHABET.includes(ch)) chars.push({ best: ch, prob, alternatives: [{ char: ch, prob }] });
    }
    return chars;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
