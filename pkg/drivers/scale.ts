// `value * scale + offset` for every driver that scales raw numbers (text patterns, serial binary
// fields, Modbus registers), so that published readings and status carry the decimal a person
// expects: 33 * 0.1 is 3.3, not 3.3000000000000003.
//
// Why 15 significant digits: a double holds every decimal of up to 15 significant digits exactly
// (DBL_DIG), and binary rounding noise lives in the 16th and 17th. Rounding the result to 15
// therefore removes the noise and loses nothing a sensor could have meant. Unscaled values are
// passed through untouched (a 53-bit counter keeps all its digits).

/** The scaled value, without binary floating-point noise. */
export function scaleValue(raw: number, scale = 1, offset = 0): number {
  if (scale === 1 && offset === 0) return raw;
  const scaled = raw * scale + offset;
  return Number.isFinite(scaled) ? Number(scaled.toPrecision(15)) : scaled;
}
