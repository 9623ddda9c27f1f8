import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';

/** One day of the Seattle weather data set (vega-datasets, 2012–2015, one row per day). */
export interface WeatherDay {
  date: string;
  precipitation: number;
  temp_max: number;
  temp_min: number;
  wind: number;
  weather: string;
}

/** The model's input: what is known the evening before (no precipitation, which is the label). */
export interface WeatherFeatures {
  temp_max: number;
  temp_min: number;
  temp_range: number;
  wind: number;
}

/** Feature names in the order the model's input tensor uses. */
export const FEATURE_NAMES = ['temp_max', 'temp_min', 'temp_range', 'wind'] as const;

/** Where the data set ships: the `vega-datasets` npm package. */
export function weatherCsvPath(): string {
  // The package exports only its JS entry, so locate the package root from it and read the data file.
  const require = createRequire(import.meta.url);
  const entry = require.resolve('vega-datasets');
  return join(entry.slice(0, entry.lastIndexOf(`${sep}build${sep}`)), 'data', 'seattle-weather.csv');
}

/** Parses the CSV; throws with the line number on a malformed row. */
export function parseWeatherCsv(text: string): WeatherDay[] {
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0].split(',');
  const expected = ['date', 'precipitation', 'temp_max', 'temp_min', 'wind', 'weather'];
  if (header.join(',') !== expected.join(',')) {
    throw new Error(
      `seattle-weather.csv: unexpected header "${lines[0]}" (expected "${expected.join(',')}")`,
    );
  }
  return lines.slice(1).map((line, i) => {
    const [date, precipitation, tmax, tmin, wind, weather] = line.split(',');
    const row = {
      date,
      precipitation: Number(precipitation),
      temp_max: Number(tmax),
      temp_min: Number(tmin),
      wind: Number(wind),
      weather,
    };
    if (![row.precipitation, row.temp_max, row.temp_min, row.wind].every(Number.isFinite)) {
      throw new Error(`seattle-weather.csv:${i + 2}: a numeric column is not a number: "${line}"`);
    }
    return row;
  });
}

/** Reads the shipped data set. */
export function loadWeather(): { path: string; bytes: Buffer; days: WeatherDay[] } {
  const path = weatherCsvPath();
  const bytes = readFileSync(path);
  return { path, bytes, days: parseWeatherCsv(bytes.toString('utf8')) };
}

/** Feature engineering: the evening-before features of a day. */
export function featuresOf(day: WeatherDay): WeatherFeatures {
  return {
    temp_max: day.temp_max,
    temp_min: day.temp_min,
    temp_range: Math.round((day.temp_max - day.temp_min) * 10) / 10,
    wind: day.wind,
  };
}

/** The label: did it rain (any precipitation) that day. */
export function wetLabel(day: WeatherDay): 0 | 1 {
  return day.precipitation > 0 ? 1 : 0;
}

/** A labelled example for training and evaluation. */
export interface Example {
  date: string;
  x: number[];
  y: 0 | 1;
}

/** Days → examples in {@link FEATURE_NAMES} order. */
export function toExamples(days: readonly WeatherDay[]): Example[] {
  return days.map((d) => {
    const f = featuresOf(d);
    return { date: d.date, x: FEATURE_NAMES.map((n) => f[n]), y: wetLabel(d) };
  });
}

/** Days whose date falls in [from, to) (ISO dates compare as strings). */
export function between(days: readonly WeatherDay[], from: string, to: string): WeatherDay[] {
  return days.filter((d) => d.date >= from && d.date < to);
}
