/**
 * Hop-by-hop request headers (RFC 9110 §7.6.1, plus the non-standard `Keep-Alive` and `Proxy-Connection`): they
 * describe one connection, never travel past a proxy, and so can never carry anything the gateway forwards or
 * reads as configuration (the gateway strips them: gateway/http/header-rules.ts; a legacy key header may not be
 * one of them: config/schema.ts).
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
];
