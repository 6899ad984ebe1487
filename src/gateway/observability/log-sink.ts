/**
 * One ordered, batched writer for every log line of the process (pino's application logs and the access log).
 *
 * Why not pino's own destination (sonic-boom): it recomputes the byte length of its whole pending buffer on every
 * write and flushes at most 16 KiB per system call; at 10k requests/s that measured ~13% of gateway CPU.
 *
 * Lines are not kept as strings until they are written: a string that lives for tens of milliseconds survives
 * young-generation collections and is copied, then promoted, which at one access-log line per request cost more
 * than building the lines. So a few lines are joined (a cheap rope) and then encoded into a large preallocated
 * chunk buffer at once; full chunks (or, every `flushMs`, the partly filled one) are written with one system call
 * each, one write in flight at a time, and their buffers reused. Past `maxPending` bytes lines are dropped and
 * counted, so a stuck stdout cannot grow the heap without bound.
 */
import { write, writeSync } from 'node:fs';

export interface LogSinkOptions {
  fd?: number;
  flushMs?: number;
  /** Size of one chunk buffer: the most bytes written by one system call (larger lines get their own). */
  maxBatch?: number;
  maxPending?: number;
}

/** Lines joined as a string before they are encoded into the chunk buffer. */
const LINES_PER_SPILL = 32;
/** Chunk buffers kept for reuse once written. */
const SPARE_CHUNKS = 2;

export class LogSink {
  readonly #fd: number;
  readonly #chunkSize: number;
  readonly #maxPending: number;
  /** Lines not yet encoded. */
  #text = '';
  #textLines = 0;
  /** The chunk being filled, and how many of its bytes are used. */
  #chunk: Buffer | undefined;
  #used = 0;
  /** Filled chunks waiting for the write in flight (each a view of exactly its bytes). */
  #queue: Buffer[] = [];
  #spare: Buffer[] = [];
  /** Bytes accepted and not yet written (an upper bound while in #text: UTF-16 units, not bytes). */
  #pending = 0;
  #writing = false;
  #timer: NodeJS.Timeout;
  /** Lines dropped because the output could not keep up. */
  dropped = 0;

  constructor(options: LogSinkOptions = {}) {
    this.#fd = options.fd ?? 1;
    this.#chunkSize = Math.min(options.maxBatch ?? 256 * 1024, 16 * 1024 * 1024);
    this.#maxPending = options.maxPending ?? 64 * 1024 * 1024;
    this.#timer = setInterval(() => this.flush(), options.flushMs ?? 50);
    this.#timer.unref();
  }

  /** Queues one line (which must end with '\n'). pino calls this as its destination stream. */
  write(line: string): boolean {
    if (this.#pending > this.#maxPending) {
      this.dropped++;
      return false;
    }
    this.#text += line;
    this.#pending += line.length;
    if (++this.#textLines >= LINES_PER_SPILL) this.#spill();
    return true;
  }

  /** Starts writing what is queued, unless a write is in flight (it continues when that one ends). */
  flush(): void {
    this.#spill();
    this.#seal();
    this.#next();
  }

  /** Encodes the joined lines into the current chunk (a new chunk when they do not fit). */
  #spill(): void {
    const text = this.#text;
    if (text === '') return;
    this.#text = '';
    this.#textLines = 0;
    const worst = text.length * 3; // UTF-8 bytes per UTF-16 unit, at most
    if (worst > this.#chunkSize) {
      // Larger than a chunk: its own buffer, after what is already filled.
      this.#seal();
      this.#enqueue(Buffer.from(text), text.length);
      return;
    }
    if (this.#chunk === undefined || this.#chunkSize - this.#used < worst) {
      this.#seal();
      // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool, so it can be reused after its write.
      this.#chunk = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.#chunkSize);
      this.#used = 0;
    }
    const bytes = this.#chunk.write(text, this.#used);
    this.#used += bytes;
    this.#pending += bytes - text.length;
    if (this.#chunkSize - this.#used < 1024) {
      this.#seal();
      this.#next();
    }
  }

  /** Moves the current chunk, if it holds anything, to the write queue. */
  #seal(): void {
    if (this.#chunk === undefined || this.#used === 0) return;
    this.#queue.push(this.#chunk.subarray(0, this.#used));
    this.#chunk = undefined;
    this.#used = 0;
  }

  #enqueue(bytes: Buffer, accounted: number): void {
    this.#pending += bytes.length - accounted;
    this.#queue.push(bytes);
  }

  #next(): void {
    if (this.#writing) return;
    const chunk = this.#queue.shift();
    if (chunk === undefined) return;
    this.#writing = true;
    this.#writeChunk(chunk, 0);
  }

  #writeChunk(chunk: Buffer, offset: number): void {
    write(this.#fd, chunk, offset, chunk.length - offset, null, (error, written) => {
      if (error) {
        // EAGAIN on a non-blocking pipe: try again shortly; anything else: the output is gone, drop the chunk.
        if (error.code === 'EAGAIN') return void setTimeout(() => this.#writeChunk(chunk, offset), 5).unref();
        this.#done(chunk);
        return;
      }
      if (offset + written < chunk.length) return this.#writeChunk(chunk, offset + written);
      this.#done(chunk);
    });
  }

  #done(chunk: Buffer): void {
    this.#pending -= chunk.length;
    // A chunk buffer (its own ArrayBuffer, see #spill) is kept for reuse; a buffer made for one large line is not.
    if (chunk.byteOffset === 0 && chunk.buffer.byteLength === this.#chunkSize && this.#spare.length < SPARE_CHUNKS) this.#spare.push(Buffer.from(chunk.buffer, 0, this.#chunkSize));
    this.#writing = false;
    this.#next();
  }

  /** Writes everything queued synchronously (process exit). */
  flushSync(): void {
    clearInterval(this.#timer);
    this.#spill();
    this.#seal();
    // At exit there is no later turn of the event loop: what is queued is written now. (A write in flight, if any,
    // is in the thread pool and may land before or after these lines.)
    for (const chunk of this.#queue.splice(0)) {
      let offset = 0;
      while (offset < chunk.length) {
        try {
          offset += writeSync(this.#fd, chunk, offset);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
        }
      }
      this.#pending -= chunk.length;
    }
  }
}
