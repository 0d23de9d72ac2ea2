// Short clips of a car passing a fixed camera, generated from the real photos of
// ../shared/anpr-bench: the photo with its car's surroundings blurred away is the street, and a
// patch around the plate (the car's rear, three plates wide and four high) moves across it, a
// little each frame, as a car does between two frames of a gantry camera at 10 fps. The camera
// does not move, so a motion gate sees the car and not the street. Used to measure what reading a
// camera's frame stream costs (plates read per second per core), not accuracy on single photos.
import sharp from 'sharp';
import { mulberry32 } from '../../tests/helpers/random.js';
import { loadPhotos } from './busy-scenes.js';

export interface ClipFrame {
  jpeg: Buffer;
  /** Where the plate is in this frame: x, y, w, h. */
  plate: [number, number, number, number];
}

export interface Clip {
  /** The photo, as `eu/NAME.jpg`. */
  source: string;
  /** The plate's text, normalised; `EU` or `BR`. */
  text: string;
  country: string;
  width: number;
  height: number;
  frames: ClipFrame[];
}

export interface ClipOptions {
  photosDir: string;
  seed: number;
  clips: number;
  /** Frames per clip (default 8). */
  frames?: number;
}

interface Raw {
  data: Buffer;
  width: number;
  height: number;
}

const raw = (r: Raw) => ({ raw: { width: r.width, height: r.height, channels: 3 as const } });

async function rgb(pipeline: ReturnType<typeof sharp>): Promise<Raw> {
  const { data, info } = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

export async function generateClips({ photosDir, seed, clips, frames = 8 }: ClipOptions): Promise<Clip[]> {
  const photos = await loadPhotos(photosDir);
  const random = mulberry32(seed);
  const out: Clip[] = [];
  for (let c = 0; c < clips; c++) {
    const photo = photos[Math.floor(random() * photos.length)]!;
    const img = await rgb(sharp(photo.file));
    const p = photo.box;
    // The car: three plates wide and four high around its plate.
    const x0 = Math.max(0, Math.round(p.x - p.w));
    const y0 = Math.max(0, Math.round(p.y - 1.5 * p.h));
    const x1 = Math.min(img.width, Math.round(p.x + 2 * p.w));
    const y1 = Math.min(img.height, Math.round(p.y + 2.5 * p.h));
    const car = { left: x0, top: y0, width: x1 - x0, height: y1 - y0 };
    const patch = await rgb(sharp(img.data, raw(img)).extract(car));
    const blurred = await rgb(sharp(patch.data, raw(patch)).blur(Math.max(6, p.h)));
    const street = await rgb(sharp(img.data, raw(img)).composite([{ input: blurred.data, ...raw(blurred), left: car.left, top: car.top }]));
    // Moving down the frame (towards the camera) by 5 to 35% of the plate's height per frame.
    const step = p.h * (0.05 + random() * 0.3);
    const dx = (random() - 0.5) * p.h * 0.2;
    const clip: Clip = { source: photo.source, text: photo.text, country: photo.country, width: img.width, height: img.height, frames: [] };
    for (let f = 0; f < frames; f++) {
      const left = Math.round(Math.min(Math.max(0, car.left + dx * f), img.width - car.width));
      const top = Math.round(Math.min(Math.max(0, car.top + step * f - step * (frames / 2)), img.height - car.height));
      const jpeg = await sharp(street.data, raw(street))
        .composite([{ input: patch.data, ...raw(patch), left, top }])
        .jpeg({ quality: 85 })
        .toBuffer();
      clip.frames.push({ jpeg, plate: [p.x + left - car.left, p.y + top - car.top, p.w, p.h] });
    }
    out.push(clip);
  }
  return out;
}
