// Reads the little the dispatcher needs from a JPEG's EXIF block (APP1 "Exif\0\0"): where the
// picture was taken and when. The browser's re-encoding drops EXIF, so the page reads it first.
// Every offset comes from the file, so every offset is checked; bad data ends the reading and
// what was already read is kept. readExif never throws.

const GPS_IFD = 0x8825;
const EXIF_IFD = 0x8769;
// Bytes per value, by TIFF type: BYTE ASCII SHORT LONG RATIONAL SBYTE UNDEFINED SSHORT SLONG
// SRATIONAL FLOAT DOUBLE IFD.
const SIZES = [0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4];

// The start of a file (ArrayBuffer or typed array) to {lat, lon, accuracy_m, captured_at}:
// decimal degrees, south and west negative, both or neither; metres; ISO 8601 with its offset.
// null wherever the file says nothing usable.
export function readExif(buffer) {
  const found = { lat: null, lon: null, accuracy_m: null, captured_at: null };
  try {
    const view = ArrayBuffer.isView(buffer)
      ? new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength)
      : new DataView(buffer);
    const tiff = findTiff(view);
    if (tiff) readTiff(tiff, found);
  } catch {
    // Malformed beyond what the checks foresaw: keep what was read.
  }
  return found;
}

// Walks the JPEG markers from SOI to the first APP1 that holds EXIF; the TIFF block inside it.
function findTiff(view) {
  const end = view.byteLength;
  if (end < 4 || view.getUint16(0) !== 0xffd8) return null;
  let at = 2;
  while (at + 4 <= end) {
    if (view.getUint8(at) !== 0xff) return null;
    const marker = view.getUint8(at + 1);
    if (marker === 0xff) { at += 1; continue; } // fill byte
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { at += 2; continue; }
    if (marker === 0xd9 || marker === 0xda) return null; // image data: no EXIF before it
    const length = view.getUint16(at + 2);
    const stop = at + 2 + length;
    if (length < 2 || stop > end) return null;
    if (marker === 0xe1 && length >= 16 && view.getUint32(at + 4) === 0x45786966 &&
        view.getUint16(at + 8) === 0) {
      return new DataView(view.buffer, view.byteOffset + at + 10, length - 8);
    }
    at = stop;
  }
  return null;
}

function readTiff(view, found) {
  const order = view.getUint16(0);
  if (order !== 0x4949 && order !== 0x4d4d) return;
  const le = order === 0x4949;
  const u16 = (at) => view.getUint16(at, le);
  const u32 = (at) => view.getUint32(at, le);
  if (u16(2) !== 42) return;

  // One directory, as {tag: entry offset}; null when it does not fit in the block.
  function ifd(at) {
    if (!Number.isInteger(at) || at < 8 || at + 2 > view.byteLength) return null;
    const count = u16(at);
    if (at + 2 + count * 12 > view.byteLength) return null;
    const entries = new Map();
    for (let i = 0; i < count; i += 1) {
      const entry = at + 2 + i * 12;
      entries.set(u16(entry), entry);
    }
    return entries;
  }

  // An entry's values: a string for ASCII, else numbers; null when missing or out of bounds.
  function values(entries, tag) {
    const entry = entries?.get(tag);
    if (entry === undefined) return null;
    const type = u16(entry + 2);
    const count = u32(entry + 4);
    const size = SIZES[type] ?? 0;
    if (!size || count < 1 || count > 64) return null;
    const at = size * count <= 4 ? entry + 8 : u32(entry + 8);
    if (at + size * count > view.byteLength) return null;
    if (type === 2 || type === 7) {
      let text = "";
      for (let i = 0; i < count; i += 1) {
        const code = view.getUint8(at + i);
        if (!code) break;
        text += String.fromCharCode(code);
      }
      return text.trim();
    }
    const out = [];
    for (let i = 0; i < count; i += 1) {
      const p = at + i * size;
      if (type === 3) out.push(u16(p));
      else if (type === 4 || type === 13) out.push(u32(p));
      else if (type === 9) out.push(view.getInt32(p, le));
      else if (type === 5) out.push(u32(p + 4) ? u32(p) / u32(p + 4) : NaN);
      else if (type === 10) {
        const below = view.getInt32(p + 4, le);
        out.push(below ? view.getInt32(p, le) / below : NaN);
      } else if (type === 1) out.push(view.getUint8(p));
      else return null; // not a type these fields use
    }
    return out;
  }

  const first = ifd(u32(4));
  if (!first) return;
  const pointer = (tag) => values(first, tag)?.[0];

  const gps = ifd(pointer(GPS_IFD));
  if (gps) {
    const lat = coordinate(values(gps, 2), values(gps, 1), "N", "S", 90);
    const lon = coordinate(values(gps, 4), values(gps, 3), "E", "W", 180);
    // 0,0 is what some phones write when they had no fix.
    if (lat !== null && lon !== null && (lat || lon)) {
      found.lat = lat;
      found.lon = lon;
      const error = values(gps, 0x1f)?.[0];
      // The server refuses an error of 1,000 km or more: such a value is noise, not a fix.
      if (Number.isFinite(error) && error >= 0 && error < 1e6) found.accuracy_m = error;
    }
  }

  const exif = ifd(pointer(EXIF_IFD));
  if (exif) {
    const taken = values(exif, 0x9003);
    const offset = values(exif, 0x9011);
    if (typeof taken === "string") found.captured_at = isoTime(taken, offset);
  }
}

// Degrees, minutes and seconds with their hemisphere; a missing hemisphere could put the
// caller on the wrong side of the world, so no reference means no coordinate.
function coordinate(dms, ref, plus, minus, limit) {
  ref = typeof ref === "string" ? ref.toUpperCase() : "";
  if (!Array.isArray(dms) || dms.length < 3 || (ref !== plus && ref !== minus)) return null;
  const [d, m, s] = dms;
  if (![d, m, s].every((n) => Number.isFinite(n) && n >= 0)) return null;
  const value = d + m / 60 + s / 3600;
  if (value > limit) return null;
  return ref === minus ? -value : value;
}

// "2026:11:24 07:59:41" and "+01:00" to "2026-11-24T07:59:41+01:00". Without an offset in the
// file, the phone's own time zone on that date (the picture was most likely taken where it is).
function isoTime(taken, offset) {
  const parts = /^(\d{4}):(\d\d):(\d\d)[ T](\d\d):(\d\d):(\d\d)$/.exec(taken);
  if (!parts) return null;
  const [y, mo, d, h, mi, s] = parts.slice(1).map(Number);
  const local = new Date(y, mo - 1, d, h, mi, s);
  if (y < 1900 || local.getMonth() !== mo - 1 || local.getDate() !== d || h > 23 || mi > 59 ||
      s > 59) return null;
  let zone = typeof offset === "string" && /^[+-](0\d|1[0-4]):[0-5]\d$/.test(offset) ? offset : "";
  if (!zone) {
    const minutes = -local.getTimezoneOffset();
    const abs = Math.abs(minutes);
    const pad = (n) => String(n).padStart(2, "0");
    zone = `${minutes < 0 ? "-" : "+"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }
  return `${parts.slice(1, 4).join("-")}T${parts.slice(4, 7).join(":")}${zone}`;
}
