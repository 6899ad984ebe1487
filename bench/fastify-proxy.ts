/**
 * What a Node user would otherwise pick: fastify + @fastify/http-proxy (undici underneath, its defaults:
 * 128 keep-alive connections), logger off, no other plugins.
 *
 * Usage: scripts/node bench/fastify-proxy.ts --port N --upstream http://127.0.0.1:PORT
 */
import { parseArgs } from 'node:util';
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const { values } = parseArgs({
  options: { port: { type: 'string' }, upstream: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
});
const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
await app.register(proxy, { upstream: values.upstream! });
await app.listen({ port: Number(values.port ?? 0), host: values.host });
const stop = () => void app.close();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
