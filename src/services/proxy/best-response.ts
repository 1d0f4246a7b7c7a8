/**
 * Choosing the response a forking proxy sends upstream once every branch has a
 * final response (RFC 3261 §16.7 step 6) and merging the challenges of 401/407
 * responses (§16.7 step 7). Pure functions over the collected responses.
 */
import type { SipResponse } from '../../sip/index.ts';

/**
 * §16.7 step 6: "If there are any 6xx class responses, the proxy MUST choose from
 * those ... If no 6xx class responses are present, the proxy SHOULD choose from the
 * lowest response class stored in the response context ... The proxy SHOULD give
 * preference to responses that provide information affecting resubmission of this
 * request, such as 401, 407, 415, 420, and 484 if the 4xx class is chosen."
 *
 * Returns undefined when nothing was collected (the caller answers 408, "If no final
 * response has been received, the proxy MUST send a 408").
 */
export function chooseBest(responses: readonly SipResponse[]): SipResponse | undefined {
  const finals = responses.filter((r) => r.status >= 300);
  if (finals.length === 0) return undefined;
  const sixes = finals.filter((r) => r.status >= 600);
  if (sixes.length > 0) return sixes[0];
  let lowest = 10;
  for (const r of finals) lowest = Math.min(lowest, Math.floor(r.status / 100));
  const inClass = finals.filter((r) => Math.floor(r.status / 100) === lowest);
  if (lowest === 4) {
    for (const preferred of [401, 407, 415, 420, 484]) {
      const p = inClass.find((r) => r.status === preferred);
      if (p !== undefined) return p;
    }
  }
  return inClass[0];
}

/**
 * §16.7 step 7: "If the selected response is a 401 or 407 ... the proxy MUST collect
 * any WWW-Authenticate and Proxy-Authenticate header field values from all other 401
 * (Unauthorized) and 407 (Proxy Authentication Required) responses received so far
 * in this response context and add them to this response without modification".
 */
export function mergeChallenges(
  chosen: SipResponse,
  responses: readonly SipResponse[],
): SipResponse {
  if (chosen.status !== 401 && chosen.status !== 407) return chosen;
  let out = chosen;
  for (const r of responses) {
    if (r === chosen || (r.status !== 401 && r.status !== 407)) continue;
    for (const name of ['WWW-Authenticate', 'Proxy-Authenticate']) {
      for (const v of r.getRawAll(name)) out = out.append(name, v);
    }
  }
  return out;
}
