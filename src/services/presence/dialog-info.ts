/**
 * Dialog information documents (RFC 4235 §4, `application/dialog-info+xml`) for the `dialog`
 * event package: the INVITE dialogs a user is in, as a busy-lamp field shows them.
 *
 * Every NOTIFY carries the full state (§4.1 `state="full"`); `version` counts the documents
 * sent in the subscription from 0 (§4.1: it "MUST be incremented by one for each new document
 * being sent to a subscriber"). A user in no call gets a document with no `<dialog>` element.
 *
 * Everything written here from a message (URIs, display names, tags, Call-IDs) is escaped,
 * and characters XML 1.0 does not allow at all (§2.2 Char: most C0 controls, which a SIP
 * quoted-pair can carry) are dropped: no value can end an attribute or open an element.
 */
import type { StoredDialogState } from '../../store/index.ts';

export const DIALOG_EVENT = 'dialog';
export const DIALOG_INFO_CONTENT_TYPE = 'application/dialog-info+xml';
/** RFC 4235 §4: the namespace of the document. */
export const DIALOG_INFO_NS = 'urn:ietf:params:xml:ns:dialog-info';

/** XML 1.0 §2.2: characters outside Char (lone surrogates included). */
const NOT_CHAR =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text safe both as element content and inside a double-quoted attribute value (XML 1.0
 * §2.4, §3.3.3): markup characters as character references, non-characters dropped.
 */
export function escapeXml(s: string): string {
  return s.replace(NOT_CHAR, '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The `<local>` or `<remote>` participant (§4.1.6): identity with its display name. */
function participant(tag: 'local' | 'remote', identity: string, display?: string): string {
  const name = display !== undefined && display !== '' ? ` display="${escapeXml(display)}"` : '';
  return `    <${tag}><identity${name}>${escapeXml(identity)}</identity></${tag}>`;
}

/**
 * A full-state dialog-info document for `entity` (the observed user's AOR) with `dialogs`,
 * numbered `version`.
 */
export function composeDialogInfo(
  entity: string,
  version: number,
  dialogs: readonly StoredDialogState[],
): string {
  // The root's version attribute comes first after the namespace: the notifier leaves it out
  // (the first ` version="N"`) when it compares a document with the last one sent.
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<dialog-info xmlns="${DIALOG_INFO_NS}" version="${version}" state="full" entity="${escapeXml(entity)}">`,
  ];
  for (const d of dialogs) {
    // §4.1.1: id is mandatory; call-id, local-tag and remote-tag identify the SIP dialog
    // (the observed user's tag is the local one); direction says who sent the INVITE.
    let attrs = `id="${escapeXml(d.id)}" call-id="${escapeXml(d.callId)}"`;
    if (d.localTag !== undefined) attrs += ` local-tag="${escapeXml(d.localTag)}"`;
    if (d.remoteTag !== undefined) attrs += ` remote-tag="${escapeXml(d.remoteTag)}"`;
    attrs += ` direction="${d.direction}"`;
    // §4.1.2: event and code say why a dialog is terminated (and which response led there).
    let stateAttrs = '';
    if (d.event !== undefined) stateAttrs += ` event="${escapeXml(d.event)}"`;
    if (d.code !== undefined) stateAttrs += ` code="${Math.trunc(d.code)}"`;
    lines.push(
      `  <dialog ${attrs}>`,
      `    <state${stateAttrs}>${d.state}</state>`,
      participant('local', d.localIdentity, d.localDisplay),
      participant('remote', d.remoteIdentity, d.remoteDisplay),
      '  </dialog>',
    );
  }
  lines.push('</dialog-info>');
  return `${lines.join('\n')}\n`;
}
