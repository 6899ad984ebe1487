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
  /** The sink's own chunk buffers (by their ArrayBuffer): only these are reused after their write. */
  #own = new WeakSet<ArrayBufferLike>();
  /** Bytes accepted and not yet written (an upper bound while in #text: UTF-16 units, not bytes). */
  #pending = 0;
  #writing = false;
  /** A chunk whose write met EAGAIN and waits to be tried again. */
  #retry: { chunk: Buffer; offset: number; timer: NodeJS.Timeout } | undefined;
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

  /**
   * Starts writing what is queued, unless a write is in flight: then the current chunk keeps filling and is written
   * when that write ends (sealing it now would put a mostly empty chunk buffer in the queue on every tick while
   * the output is stuck, and the buffers, not the bytes in them, would grow).
   */
  flush(): void {
    this.#spill();
    if (this.#writing) return;
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
      this.#next();
      return;
    }
    if (this.#chunk === undefined || this.#chunkSize - this.#used < worst) {
      this.#seal();
      // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool, so it can be reused after its write.
      this.#chunk = this.#spare.pop() ?? this.#allocate();
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

  #allocate(): Buffer {
    const chunk = Buffer.allocUnsafeSlow(this.#chunkSize);
    this.#own.add(chunk.buffer);
    return chunk;
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
        if (error.code === 'EAGAIN') {
          this.#retry = {
            chunk,
            offset,
            timer: setTimeout(() => {
              this.#retry = undefined;
              this.#writeChunk(chunk, offset);
            }, 5),
          };
          this.#retry.timer.unref();
          return;
        }
        this.#done(chunk);
        return;
      }
      if (offset + written < chunk.length) return this.#writeChunk(chunk, offset + written);
      this.#done(chunk);
    });
  }

  #done(chunk: Buffer): void {
    this.#pending -= chunk.length;
    // A chunk buffer of the sink's own is kept for reuse; a buffer made for one large line (which may be a slice
    // of Node's shared pool) is not.
    if (this.#own.has(chunk.buffer) && this.#spare.length < SPARE_CHUNKS)
      this.#spare.push(Buffer.from(chunk.buffer, 0, this.#chunkSize));
    this.#writing = false;
    this.#next();
  }

  /** Writes everything queued synchronously (process exit). */
  flushSync(): void {
    clearInterval(this.#timer);
    this.#spill();
    this.#seal();
    // At exit there is no later turn of the event loop. A chunk waiting to retry after EAGAIN goes first, then the
    // queue. (A write already handed to the system, if any, may land before or after these lines.)
    const pending: [Buffer, number][] = [];
    if (this.#retry !== undefined) {
      clearTimeout(this.#retry.timer);
      pending.push([this.#retry.chunk, this.#retry.offset]);
      this.#retry = undefined;
    }
    for (const chunk of this.#queue.splice(0)) pending.push([chunk, 0]);
    for (const [chunk, start] of pending) {
      let offset = start;
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
