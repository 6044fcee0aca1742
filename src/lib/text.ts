/**
 * Removes Unicode White_Space (U+0085 NEXT LINE too, which JavaScript's trim() misses)
 * from both ends. A loop from each end, so the work is linear in the length whatever the
 * text: a regular expression anchored at the end (`\s+$`) is retried from every space of
 * an interior run, quadratic on a body of spaces.
 */
export function trimText(text: string): string {
  let start = 0
  let end = text.length
  while (start < end && isWhiteSpace(text.charCodeAt(start))) start++
  while (end > start && isWhiteSpace(text.charCodeAt(end - 1))) end--
  return start === 0 && end === text.length ? text : text.slice(start, end)
}
/** Unicode's White_Space property: every one of them is in the Basic Multilingual Plane. */
function isWhiteSpace(code: number): boolean {
  if (code < 0x85) return code === 0x20 || (code >= 0x09 && code <= 0x0d)
  return (
    code === 0x85 || code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000
  )
}
