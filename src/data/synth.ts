/**
 * `ttrl data synth`: short math word problems with integer answers and compact worked solutions, in
 * Turkish (`<mantık>`/`<cevap>`, numbers like 1.250) or English (`<reasoning>`/`<answer>`, 1,250).
 *
 * Problems are kept short (≲120 characters) because the shipped base model is a tiny character-level
 * model. Difficulty is controlled by the number of operations (1–3) and the magnitude level (1: two-digit
 * numbers, 2: up to three digits with some four-digit results, 3: four-digit numbers with thousands
 * separators), so a small model can learn the easy part but not all of it. Output is a pure function of
 * the options and the seed.
 */
import { UsageError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";
import type { DataRow } from "./schema.ts";

export type Lang = "tr" | "en";
export const LANGS: readonly Lang[] = ["tr", "en"];

/** Integer in the language's format: tr 1.250.000, en 1,250,000. */
export function formatInt(n: number, lang: Lang): string {
  if (!Number.isSafeInteger(n)) throw new RangeError(`formatInt: not a safe integer: ${n}`);
  const sep = lang === "tr" ? "." : ",";
  const s = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, sep);
  return n < 0 ? `-${s}` : s;
}

// ---------------------------------------------------------------------------------------------------------
// Turkish suffixes for proper names (vowel harmony), e.g. Ali'nin, Can'ın, Ayşe'ye, Mehmet'e.

const TR_VOWELS = "aıoueiöü";
function lastVowel(w: string): string {
  for (let i = w.length - 1; i >= 0; i--) {
    const c = w[i].toLocaleLowerCase("tr-TR");
    if (TR_VOWELS.includes(c)) return c;
  }
  return "e";
}
function endsWithVowel(w: string): boolean {
  return TR_VOWELS.includes(w[w.length - 1].toLocaleLowerCase("tr-TR"));
}
/** Genitive: Ali'nin, Can'ın, Umut'un, Gül'ün. */
export function trGenitive(name: string): string {
  const v = lastVowel(name);
  const h = "aı".includes(v) ? "ı" : "ei".includes(v) ? "i" : "ou".includes(v) ? "u" : "ü";
  return `${name}'${endsWithVowel(name) ? "n" : ""}${h}n`;
}
/** Dative: Ali'ye, Can'a, Ayşe'ye, Mehmet'e. */
export function trDative(name: string): string {
  const v = lastVowel(name);
  const h = "aıou".includes(v) ? "a" : "e";
  return `${name}'${endsWithVowel(name) ? "y" : ""}${h}`;
}

// ---------------------------------------------------------------------------------------------------------

const NAMES: Record<Lang, string[]> = {
  tr: [
    "Ali",
    "Ayşe",
    "Mehmet",
    "Zeynep",
    "Elif",
    "Can",
    "Emre",
    "Deniz",
    "Selin",
    "Burak",
    "Ece",
    "Mert",
    "Esra",
    "Kerem",
    "Derya",
    "Oğuz",
    "Umut",
    "Gül",
    "Murat",
    "Seda",
  ],
  en: [
    "Tom",
    "Anna",
    "Ben",
    "Lucy",
    "Sam",
    "Mia",
    "Jack",
    "Emma",
    "Leo",
    "Nora",
    "Max",
    "Ella",
    "Dan",
    "Kate",
  ],
};

interface Item {
  tr: string;
  en: string;
  enPl: string;
}
const mk = (tr: string, en: string, enPl = `${en}s`): Item => ({ tr, en, enPl });
const CHEAP: Item[] = [
  mk("kalem", "pen"),
  mk("defter", "notebook"),
  mk("bardak", "cup"),
  mk("top", "ball"),
  mk("kitap", "book"),
  mk("şapka", "hat"),
  mk("tabak", "plate"),
  mk("silgi", "eraser"),
];
const PRICEY: Item[] = [
  mk("telefon", "phone"),
  mk("bisiklet", "bike"),
  mk("koltuk", "sofa"),
  mk("televizyon", "TV"),
  mk("bilgisayar", "laptop"),
  mk("buzdolabı", "fridge"),
  mk("halı", "rug"),
  mk("masa", "table"),
];
const THINGS: Item[] = [
  mk("ceviz", "walnut"),
  mk("şeker", "candy", "candies"),
  mk("bilye", "marble"),
  mk("elma", "apple"),
  mk("kart", "card"),
  mk("yumurta", "egg"),
  mk("fidan", "sapling"),
  mk("vida", "screw"),
];

interface Out {
  q: string;
  steps: string[];
  answer: number;
}

class G {
  constructor(
    readonly rng: Rng,
    readonly lang: Lang,
    readonly level: number,
  ) {}
  tr(): boolean {
    return this.lang === "tr";
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
  }
  /** Multiple of `step` in [lo, hi]. */
  mult(lo: number, hi: number, step: number): number {
    return step * this.int(Math.ceil(lo / step), Math.floor(hi / step));
  }
  pick<T>(a: readonly T[]): T {
    return a[this.rng.int(a.length)];
  }
  name(): string {
    return this.pick(NAMES[this.lang]);
  }
  names2(): [string, string] {
    const a = this.name();
    let b = this.name();
    while (b === a) b = this.name();
    return [a, b];
  }
  /** A count of things by level: 2–9, 3–15, 4–30. */
  count(): number {
    return this.level === 1 ? this.int(2, 9) : this.level === 2 ? this.int(3, 15) : this.int(4, 30);
  }
  /** An amount (price, pages, kg) by level: 5–99; 10–995 (×5); 1.000–9.950 (×50). */
  amount(): number {
    if (this.level === 1) return this.int(5, 99);
    if (this.level === 2) return this.mult(10, 995, 5);
    return this.mult(1000, 9950, 50);
  }
  /** A smaller amount for prices of cheap items at level 3 (so products stay readable). */
  price(): number {
    if (this.level === 3) return this.pick([this.mult(100, 950, 10), this.mult(1000, 4950, 50)]);
    return this.amount();
  }
  item(): Item {
    return this.pick(this.level === 3 ? PRICEY : CHEAP);
  }
  thing(): Item {
    return this.pick(THINGS);
  }
  n(x: number): string {
    return formatInt(x, this.lang);
  }
  money(x: number): string {
    return this.tr() ? `${this.n(x)} TL` : `$${this.n(x)}`;
  }
  /** One solution line "a op b ... = result", numbers in the locale's format. */
  step(tokens: (number | string)[], result: number): string {
    return `${tokens.map((t) => (typeof t === "number" ? this.n(t) : t)).join("")}=${this.n(result)}`;
  }
  /** A percentage p and a base x such that x*p/100 is an integer. */
  percent(x0: number): [number, number] {
    const p = this.pick([5, 10, 15, 20, 25, 30, 40, 50, 60, 75]);
    const unit = 100 / gcd(p, 100);
    const x = Math.max(unit, Math.round(x0 / unit) * unit);
    return [x, p];
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

interface Template {
  name: string;
  ops: 1 | 2 | 3;
  gen(g: G): Out | null;
}

const T: Template[] = [
  // ---- one operation ----
  {
    name: "buy",
    ops: 1,
    gen(g) {
      const a = g.name();
      const it = g.item();
      const p = g.price();
      const n = g.count();
      const r = p * n;
      const q = g.tr()
        ? `${a} tanesi ${g.money(p)} olan ${g.n(n)} ${it.tr} aldı. Kaç TL ödedi?`
        : `${a} bought ${g.n(n)} ${it.enPl} at ${g.money(p)} each. How many dollars did ${a} pay?`;
      return { q, steps: [g.step([p, "*", n], r)], answer: r };
    },
  },
  {
    name: "gift",
    ops: 1,
    gen(g) {
      const [a, b] = g.names2();
      const x = g.amount();
      const y = g.amount();
      const r = x + y;
      const q = g.tr()
        ? `${trGenitive(a)} ${g.money(x)} parası vardı. ${b} ona ${g.money(y)} verdi. Şimdi kaç TL'si var?`
        : `${a} had ${g.money(x)}. ${b} gave ${a} ${g.money(y)}. How many dollars does ${a} have now?`;
      return { q, steps: [g.step([x, "+", y], r)], answer: r };
    },
  },
  {
    name: "pages-left",
    ops: 1,
    gen(g) {
      const a = g.name();
      const x = g.amount() + g.int(10, 60);
      const y = g.int(Math.ceil(x / 10), x - 1);
      const r = x - y;
      const q = g.tr()
        ? `Bir kitap ${g.n(x)} sayfa. ${a} ${g.n(y)} sayfa okudu. Geriye kaç sayfa kaldı?`
        : `A book has ${g.n(x)} pages. ${a} has read ${g.n(y)} pages. How many pages are left?`;
      return { q, steps: [g.step([x, "-", y], r)], answer: r };
    },
  },
  {
    name: "share",
    ops: 1,
    gen(g) {
      const t = g.thing();
      const n = g.count();
      const k = g.level === 1 ? g.int(2, 12) : g.level === 2 ? g.int(5, 60) : g.int(40, 400);
      const x = n * k;
      const q = g.tr()
        ? `${g.n(x)} ${t.tr} ${g.n(n)} çocuğa eşit paylaştırıldı. Her çocuk kaç ${t.tr} aldı?`
        : `${g.n(x)} ${t.enPl} are shared equally among ${g.n(n)} children. How many does each child get?`;
      return { q, steps: [g.step([x, "/", n], k)], answer: k };
    },
  },
  {
    name: "drive",
    ops: 1,
    gen(g) {
      const v = g.level === 1 ? g.mult(10, 60, 5) : g.mult(40, 120, 5);
      const t = g.level === 1 ? g.int(2, 5) : g.level === 2 ? g.int(3, 12) : g.int(12, 60);
      const r = v * t;
      const q = g.tr()
        ? `Bir araç saatte ${g.n(v)} km hızla ${g.n(t)} saat gitti. Kaç km yol aldı?`
        : `A car drives at ${g.n(v)} km per hour for ${g.n(t)} hours. How many km does it travel?`;
      return { q, steps: [g.step([v, "*", t], r)], answer: r };
    },
  },
  {
    name: "age-later",
    ops: 1,
    gen(g) {
      if (g.level === 3) return null;
      const a = g.name();
      const x = g.int(3, 60);
      const y = g.int(2, 30);
      const r = x + y;
      const q = g.tr()
        ? `${a} şimdi ${g.n(x)} yaşında. ${g.n(y)} yıl sonra kaç yaşında olacak?`
        : `${a} is ${g.n(x)} years old. How old will ${a} be in ${g.n(y)} years?`;
      return { q, steps: [g.step([x, "+", y], r)], answer: r };
    },
  },
  {
    name: "boxes",
    ops: 1,
    gen(g) {
      const t = g.thing();
      const k = g.level === 1 ? g.int(4, 24) : g.level === 2 ? g.int(12, 120) : g.int(100, 500);
      const n = g.count();
      const r = k * n;
      const q = g.tr()
        ? `Bir kolide ${g.n(k)} ${t.tr} var. ${g.n(n)} kolide kaç ${t.tr} vardır?`
        : `A box holds ${g.n(k)} ${t.enPl}. How many ${t.enPl} are in ${g.n(n)} boxes?`;
      return { q, steps: [g.step([k, "*", n], r)], answer: r };
    },
  },
  {
    name: "save-weekly",
    ops: 1,
    gen(g) {
      const a = g.name();
      const x = g.price();
      const n = g.count();
      const r = x * n;
      const q = g.tr()
        ? `${a} her hafta ${g.money(x)} biriktiriyor. ${g.n(n)} haftada kaç TL biriktirir?`
        : `${a} saves ${g.money(x)} every week. How many dollars will ${a} save in ${g.n(n)} weeks?`;
      return { q, steps: [g.step([x, "*", n], r)], answer: r };
    },
  },
  {
    name: "discount-amount",
    ops: 1,
    gen(g) {
      const [x, p] = g.percent(g.amount() * (g.level === 1 ? 4 : 1));
      const d = (x * p) / 100;
      const q = g.tr()
        ? `Fiyatı ${g.money(x)} olan bir ürüne %${p} indirim yapıldı. İndirim kaç TL?`
        : `A ${g.item().en} costs ${g.money(x)} and is ${p}% off. How many dollars is the discount?`;
      return { q, steps: [g.step([x, "*", p, "/", 100], d)], answer: d };
    },
  },
  {
    name: "difference",
    ops: 1,
    gen(g) {
      const [a, b] = g.names2();
      const x = g.amount();
      const y = g.amount();
      if (x === y) return null;
      const [hi, lo] = x > y ? [x, y] : [y, x];
      const q = g.tr()
        ? `${a} ${g.money(x)}, ${b} ${g.money(y)} kazandı. Aradaki fark kaç TL?`
        : `${a} earned ${g.money(x)} and ${b} earned ${g.money(y)}. What is the difference in dollars?`;
      return { q, steps: [g.step([hi, "-", lo], hi - lo)], answer: hi - lo };
    },
  },
  {
    name: "travel-time",
    ops: 1,
    gen(g) {
      const v = g.level === 1 ? g.mult(10, 60, 5) : g.mult(40, 120, 5);
      const t = g.level === 1 ? g.int(2, 6) : g.level === 2 ? g.int(3, 12) : g.int(12, 40);
      const d = v * t;
      const q = g.tr()
        ? `${g.n(d)} km yolu saatte ${g.n(v)} km hızla giden bir araç kaç saatte alır?`
        : `A car drives ${g.n(d)} km at ${g.n(v)} km per hour. How many hours does it take?`;
      return { q, steps: [g.step([d, "/", v], t)], answer: t };
    },
  },
  {
    name: "pages-per-day",
    ops: 1,
    gen(g) {
      const a = g.name();
      const k = g.level === 1 ? g.int(5, 20) : g.level === 2 ? g.int(10, 60) : g.int(50, 250);
      const d = g.level === 1 ? g.int(2, 9) : g.int(4, 30);
      const x = k * d;
      const q = g.tr()
        ? `${a} günde ${g.n(k)} sayfa okuyor. ${g.n(x)} sayfalık kitabı kaç günde bitirir?`
        : `${a} reads ${g.n(k)} pages a day. How many days does a ${g.n(x)}-page book take?`;
      return { q, steps: [g.step([x, "/", k], d)], answer: d };
    },
  },
  {
    name: "area",
    ops: 1,
    gen(g) {
      const a = g.level === 1 ? g.int(2, 12) : g.level === 2 ? g.int(8, 40) : g.int(30, 120);
      const b = g.level === 1 ? g.int(2, 12) : g.level === 2 ? g.int(8, 60) : g.int(40, 150);
      const q = g.tr()
        ? `Bir tarlanın eni ${g.n(a)} m, boyu ${g.n(b)} m. Alanı kaç metrekaredir?`
        : `A field is ${g.n(a)} m wide and ${g.n(b)} m long. What is its area in square meters?`;
      return { q, steps: [g.step([a, "*", b], a * b)], answer: a * b };
    },
  },
  // ---- two operations ----
  {
    name: "change",
    ops: 2,
    gen(g) {
      const a = g.name();
      const it = g.item();
      const p = g.price();
      const n = g.level === 1 ? g.int(2, 5) : g.count();
      const c = p * n;
      const unit = c < 100 ? 10 : c < 1000 ? 100 : 1000;
      const pay = (Math.floor(c / unit) + g.int(1, 3)) * unit;
      const q = g.tr()
        ? `${a} tanesi ${g.money(p)} olan ${g.n(n)} ${it.tr} aldı, ${g.money(pay)} verdi. Kaç TL para üstü aldı?`
        : `${a} bought ${g.n(n)} ${it.enPl} at ${g.money(p)} each and paid ${g.money(pay)}. How many dollars in change?`;
      return { q, steps: [g.step([p, "*", n], c), g.step([pay, "-", c], pay - c)], answer: pay - c };
    },
  },
  {
    name: "stock",
    ops: 2,
    gen(g) {
      const x = g.amount() + g.int(20, 99);
      const y = g.int(Math.ceil(x / 10), x - 1);
      const z = g.amount();
      const r = x - y + z;
      const q = g.tr()
        ? `Bir depoda ${g.n(x)} kg un vardı. ${g.n(y)} kg satıldı, ${g.n(z)} kg geldi. Depoda kaç kg un var?`
        : `A store had ${g.n(x)} kg of flour. It sold ${g.n(y)} kg and got ${g.n(z)} kg more. How many kg now?`;
      return { q, steps: [g.step([x, "-", y], x - y), g.step([x - y, "+", z], r)], answer: r };
    },
  },
  {
    name: "bus",
    ops: 2,
    gen(g) {
      const x = g.level === 1 ? g.int(10, 60) : g.level === 2 ? g.int(100, 900) : g.mult(2000, 40000, 50);
      const y = g.int(Math.ceil(x / 10), x - 1);
      const z = g.level === 1 ? g.int(2, 40) : g.level === 2 ? g.int(20, 500) : g.mult(500, 9000, 10);
      const r = x - y + z;
      const q =
        g.level === 1
          ? g.tr()
            ? `Bir otobüste ${g.n(x)} yolcu vardı. Durakta ${g.n(y)} kişi indi, ${g.n(z)} kişi bindi. Kaç yolcu oldu?`
            : `A bus had ${g.n(x)} people. At a stop ${g.n(y)} got off and ${g.n(z)} got on. How many are on it now?`
          : g.tr()
            ? `Bir stadyumda ${g.n(x)} kişi vardı. ${g.n(y)} kişi çıktı, ${g.n(z)} kişi girdi. Kaç kişi oldu?`
            : `A stadium had ${g.n(x)} people. ${g.n(y)} left and ${g.n(z)} came in. How many are there now?`;
      return { q, steps: [g.step([x, "-", y], x - y), g.step([x - y, "+", z], r)], answer: r };
    },
  },
  {
    name: "discount-price",
    ops: 2,
    gen(g) {
      const [x, p] = g.percent(g.amount() * (g.level === 1 ? 4 : 1));
      const d = (x * p) / 100;
      const q = g.tr()
        ? `Fiyatı ${g.money(x)} olan bir ürüne %${p} indirim yapıldı. Yeni fiyatı kaç TL?`
        : `A ${g.item().en} costs ${g.money(x)} and is ${p}% off. What is the new price in dollars?`;
      return { q, steps: [g.step([x, "*", p, "/", 100], d), g.step([x, "-", d], x - d)], answer: x - d };
    },
  },
  {
    name: "raise",
    ops: 2,
    gen(g) {
      const a = g.name();
      const [x, p] = g.percent(g.amount() * (g.level === 1 ? 4 : g.level === 2 ? 10 : 1));
      const d = (x * p) / 100;
      const q = g.tr()
        ? `Maaşı ${g.money(x)} olan ${trDative(a)} %${p} zam yapıldı. Yeni maaşı kaç TL?`
        : `${a} earns ${g.money(x)} a month and gets a ${p}% raise. What is the new salary in dollars?`;
      return { q, steps: [g.step([x, "*", p, "/", 100], d), g.step([x, "+", d], x + d)], answer: x + d };
    },
  },
  {
    name: "monthly-saving",
    ops: 2,
    gen(g) {
      const a = g.name();
      const x = g.amount() + g.amount();
      const y = g.int(Math.ceil(x / 4), x - 1);
      const n = g.level === 1 ? g.int(2, 6) : g.int(2, 12);
      const r = (x - y) * n;
      const q = g.tr()
        ? `${a} ayda ${g.money(x)} kazanıp ${g.money(y)} harcıyor. ${g.n(n)} ayda kaç TL biriktirir?`
        : `${a} earns ${g.money(x)} and spends ${g.money(y)} a month. How many dollars saved in ${g.n(n)} months?`;
      return { q, steps: [g.step([x, "-", y], x - y), g.step([x - y, "*", n], r)], answer: r };
    },
  },
  {
    name: "profit",
    ops: 2,
    gen(g) {
      const it = g.item();
      const p = g.price();
      const q0 = p + Math.max(1, Math.round(p * (g.int(10, 60) / 100)));
      const n = g.count();
      const r = (q0 - p) * n;
      const q = g.tr()
        ? `Bir esnaf tanesi ${g.money(p)} olan ${g.n(n)} ${it.tr} alıp tanesini ${g.money(q0)} sattı. Kârı kaç TL?`
        : `A shop buys ${g.n(n)} ${it.enPl} at ${g.money(p)} and sells each for ${g.money(q0)}. Profit in dollars?`;
      return { q, steps: [g.step([q0, "-", p], q0 - p), g.step([q0 - p, "*", n], r)], answer: r };
    },
  },
  {
    name: "orchard",
    ops: 2,
    gen(g) {
      const rows = g.count();
      const k = g.level === 1 ? g.int(3, 12) : g.level === 2 ? g.int(10, 40) : g.int(40, 150);
      const c = g.int(1, Math.max(1, Math.floor((rows * k) / 3)));
      const r = rows * k - c;
      const q = g.tr()
        ? `Bir bahçede ${g.n(rows)} sıra ağaç var, her sırada ${g.n(k)} ağaç. ${g.n(c)} ağaç kesildi. Kaç ağaç kaldı?`
        : `An orchard has ${g.n(rows)} rows of ${g.n(k)} trees. ${g.n(c)} trees are cut down. How many are left?`;
      return { q, steps: [g.step([rows, "*", k], rows * k), g.step([rows * k, "-", c], r)], answer: r };
    },
  },
  {
    name: "perimeter",
    ops: 2,
    gen(g) {
      const a = g.level === 1 ? g.int(2, 20) : g.level === 2 ? g.int(10, 200) : g.int(200, 2500);
      const b = g.level === 1 ? g.int(2, 20) : g.level === 2 ? g.int(10, 300) : g.int(300, 4000);
      const r = (a + b) * 2;
      const q = g.tr()
        ? `Bir bahçenin eni ${g.n(a)} m, boyu ${g.n(b)} m. Çevresi kaç metredir?`
        : `A garden is ${g.n(a)} m wide and ${g.n(b)} m long. What is its perimeter in meters?`;
      return { q, steps: [g.step([a, "+", b], a + b), g.step([a + b, "*", 2], r)], answer: r };
    },
  },
  {
    name: "spend-share",
    ops: 2,
    gen(g) {
      const a = g.name();
      const n = g.level === 1 ? g.int(2, 5) : g.int(2, 9);
      const each = g.level === 1 ? g.int(2, 15) : g.level === 2 ? g.int(10, 150) : g.mult(200, 2000, 10);
      const y = g.amount();
      const x = each * n + y;
      const q = g.tr()
        ? `${trGenitive(a)} ${g.money(x)} parası vardı. ${g.money(y)} harcadı, kalanı ${g.n(n)} kişiye eşit böldü. Kişi başı kaç TL?`
        : `${a} had ${g.money(x)}, spent ${g.money(y)} and split the rest among ${g.n(n)} friends. Dollars each?`;
      return { q, steps: [g.step([x, "-", y], x - y), g.step([x - y, "/", n], each)], answer: each };
    },
  },
  {
    name: "wage",
    ops: 2,
    gen(g) {
      const a = g.name();
      const h = g.int(2, 9);
      const d = g.level === 1 ? g.int(2, 5) : g.int(3, 25);
      const p = g.level === 1 ? g.int(3, 20) : g.level === 2 ? g.mult(20, 300, 5) : g.mult(100, 900, 10);
      const r = h * d * p;
      const q = g.tr()
        ? `${a} günde ${g.n(h)} saat çalışıyor, saatte ${g.money(p)} kazanıyor. ${g.n(d)} günde kaç TL kazanır?`
        : `${a} works ${g.n(h)} hours a day and earns ${g.money(p)} an hour. How many dollars in ${g.n(d)} days?`;
      return { q, steps: [g.step([h, "*", d], h * d), g.step([h * d, "*", p], r)], answer: r };
    },
  },
  {
    name: "age-sum",
    ops: 2,
    gen(g) {
      if (g.level === 3) return null;
      const a = g.name();
      const x = g.int(2, 15);
      const k = g.int(2, Math.min(9, Math.floor(80 / x)));
      if (k < 2) return null;
      const r = x * k + x;
      const q = g.tr()
        ? `${a} ${g.n(x)} yaşında. Babasının yaşı bunun ${g.n(k)} katı. İkisinin yaşları toplamı kaç?`
        : `${a} is ${g.n(x)}. ${a}'s father is ${g.n(k)} times as old. What is the sum of their ages?`;
      return { q, steps: [g.step([x, "*", k], x * k), g.step([x * k, "+", x], r)], answer: r };
    },
  },
  {
    name: "savings-start",
    ops: 2,
    gen(g) {
      const a = g.name();
      const x = g.amount();
      const y = g.price();
      const n = g.count();
      const r = x + y * n;
      const q = g.tr()
        ? `${trGenitive(a)} ${g.money(x)} parası var. Her hafta ${g.money(y)} biriktirirse ${g.n(n)} hafta sonra kaç TL'si olur?`
        : `${a} has ${g.money(x)} and saves ${g.money(y)} a week. How many dollars after ${g.n(n)} weeks?`;
      return { q, steps: [g.step([y, "*", n], y * n), g.step([x, "+", y * n], r)], answer: r };
    },
  },
  // ---- three operations ----
  {
    name: "two-items",
    ops: 3,
    gen(g) {
      const a = g.name();
      const i1 = g.item();
      let i2 = g.item();
      while (i2 === i1) i2 = g.item();
      const p = g.price();
      const q1 = g.price();
      const n = g.level === 1 ? g.int(2, 6) : g.count();
      const k = g.level === 1 ? g.int(2, 6) : g.count();
      const r = p * n + q1 * k;
      const q = g.tr()
        ? `${a} tanesi ${g.money(p)} olan ${g.n(n)} ${i1.tr} ve tanesi ${g.money(q1)} olan ${g.n(k)} ${i2.tr} aldı. Kaç TL ödedi?`
        : `${a} bought ${g.n(n)} ${i1.enPl} at ${g.money(p)} and ${g.n(k)} ${i2.enPl} at ${g.money(q1)}. Total in dollars?`;
      return {
        q,
        steps: [g.step([p, "*", n], p * n), g.step([q1, "*", k], q1 * k), g.step([p * n, "+", q1 * k], r)],
        answer: r,
      };
    },
  },
  {
    name: "tickets",
    ops: 3,
    gen(g) {
      const n = g.count();
      const k = g.count();
      const p = g.level === 1 ? g.int(10, 40) : g.level === 2 ? g.mult(50, 400, 5) : g.mult(500, 3000, 50);
      const c = Math.max(5, Math.round((p * g.int(30, 70)) / 100 / 5) * 5);
      const r = n * p + k * c;
      const q = g.tr()
        ? `Bir konsere ${g.n(n)} yetişkin, ${g.n(k)} çocuk geldi. Bilet yetişkine ${g.money(p)}, çocuğa ${g.money(c)}. Toplam kaç TL?`
        : `${g.n(n)} adults and ${g.n(k)} kids went to a show. Tickets: ${g.money(p)} adult, ${g.money(c)} kid. Total dollars?`;
      return {
        q,
        steps: [g.step([p, "*", n], p * n), g.step([c, "*", k], c * k), g.step([p * n, "+", c * k], r)],
        answer: r,
      };
    },
  },
  {
    name: "legs",
    ops: 3,
    gen(g) {
      const a = g.level === 1 ? g.int(2, 15) : g.level === 2 ? g.int(10, 150) : g.int(200, 2500);
      const b = g.level === 1 ? g.int(2, 15) : g.level === 2 ? g.int(10, 150) : g.int(200, 2500);
      const r = a * 2 + b * 4;
      const q = g.tr()
        ? `Bir çiftlikte ${g.n(a)} tavuk ve ${g.n(b)} koyun var. Toplam kaç bacak vardır?`
        : `A farm has ${g.n(a)} chickens and ${g.n(b)} sheep. How many legs are there in total?`;
      return {
        q,
        steps: [g.step([a, "*", 2], a * 2), g.step([b, "*", 4], b * 4), g.step([a * 2, "+", b * 4], r)],
        answer: r,
      };
    },
  },
  {
    name: "change-two",
    ops: 3,
    gen(g) {
      const a = g.name();
      const it = g.item();
      const p = g.price();
      const n = g.level === 1 ? g.int(2, 5) : g.int(2, 9);
      const b = g.price();
      const c = p * n + b;
      const unit = c < 100 ? 10 : c < 1000 ? 100 : 1000;
      const pay = (Math.floor(c / unit) + g.int(1, 3)) * unit;
      const q = g.tr()
        ? `${a} tanesi ${g.money(p)} olan ${g.n(n)} ${it.tr} ve ${g.money(b)} olan bir çanta aldı, ${g.money(pay)} verdi. Para üstü kaç TL?`
        : `${a} bought ${g.n(n)} ${it.enPl} at ${g.money(p)} and a ${g.money(b)} bag, paying ${g.money(pay)}. Change in dollars?`;
      return {
        q,
        steps: [g.step([p, "*", n], p * n), g.step([p * n, "+", b], c), g.step([pay, "-", c], pay - c)],
        answer: pay - c,
      };
    },
  },
  {
    name: "average",
    ops: 3,
    gen(g) {
      const a = g.name();
      const base =
        g.level === 1 ? g.int(20, 90) : g.level === 2 ? g.mult(100, 900, 5) : g.mult(1000, 9000, 50);
      const spread = Math.max(3, Math.floor(base / 5));
      const x = base + g.int(-spread, spread);
      const y = base + g.int(-spread, spread);
      const s = x + y;
      let z = base + g.int(-spread, spread);
      z -= (s + z) % 3;
      if (x <= 0 || y <= 0 || z <= 0) return null;
      const avg = (s + z) / 3;
      const q = g.tr()
        ? `${a} üç günde ${g.money(x)}, ${g.money(y)} ve ${g.money(z)} kazandı. Günlük ortalama kaç TL?`
        : `${a} earned ${g.money(x)}, ${g.money(y)} and ${g.money(z)} in three days. Daily average in dollars?`;
      return {
        q,
        steps: [g.step([x, "+", y], s), g.step([s, "+", z], s + z), g.step([s + z, "/", 3], avg)],
        answer: avg,
      };
    },
  },
  {
    name: "trip",
    ops: 3,
    gen(g) {
      const v = g.level === 1 ? g.mult(10, 60, 5) : g.mult(40, 120, 5);
      const w = g.level === 1 ? g.mult(10, 60, 5) : g.mult(40, 120, 5);
      const t = g.level === 3 ? g.int(10, 30) : g.int(2, 6);
      const s = g.level === 3 ? g.int(10, 30) : g.int(2, 6);
      const r = v * t + w * s;
      const q = g.tr()
        ? `Bir araç saatte ${g.n(v)} km hızla ${g.n(t)} saat, sonra ${g.n(w)} km hızla ${g.n(s)} saat gitti. Kaç km gitti?`
        : `A car went ${g.n(v)} km/h for ${g.n(t)} hours, then ${g.n(w)} km/h for ${g.n(s)} hours. How many km in all?`;
      return {
        q,
        steps: [g.step([v, "*", t], v * t), g.step([w, "*", s], w * s), g.step([v * t, "+", w * s], r)],
        answer: r,
      };
    },
  },
  {
    name: "bus-two-stops",
    ops: 3,
    gen(g) {
      const x = g.level === 1 ? g.int(20, 60) : g.level === 2 ? g.int(100, 900) : g.mult(2000, 40000, 50);
      const y = g.int(Math.ceil(x / 10), Math.floor(x / 2));
      const z = g.level === 1 ? g.int(2, 30) : g.level === 2 ? g.int(20, 400) : g.mult(500, 9000, 10);
      const w = g.int(1, Math.floor((x - y + z) / 2));
      const r = x - y + z - w;
      const q =
        g.level === 1
          ? g.tr()
            ? `Bir otobüste ${g.n(x)} yolcu vardı. ${g.n(y)} kişi indi, ${g.n(z)} kişi bindi, sonra ${g.n(w)} kişi indi. Kaç yolcu kaldı?`
            : `A bus had ${g.n(x)} people. ${g.n(y)} got off, ${g.n(z)} got on, then ${g.n(w)} got off. How many are left?`
          : g.tr()
            ? `Bir stadyumda ${g.n(x)} kişi vardı. ${g.n(y)} kişi çıktı, ${g.n(z)} kişi girdi, sonra ${g.n(w)} kişi çıktı. Kaç kişi kaldı?`
            : `A stadium had ${g.n(x)} people. ${g.n(y)} left, ${g.n(z)} came, then ${g.n(w)} left. How many are there now?`;
      return {
        q,
        steps: [
          g.step([x, "-", y], x - y),
          g.step([x - y, "+", z], x - y + z),
          g.step([x - y + z, "-", w], r),
        ],
        answer: r,
      };
    },
  },
  {
    name: "raise-rent",
    ops: 3,
    gen(g) {
      const a = g.name();
      const [x, p] = g.percent(g.amount() * (g.level === 1 ? 4 : g.level === 2 ? 10 : 1));
      const d = (x * p) / 100;
      const rent = g.int(Math.ceil((x + d) / 5), Math.floor(((x + d) * 3) / 4));
      const r = x + d - rent;
      const q = g.tr()
        ? `Maaşı ${g.money(x)} olan ${trDative(a)} %${p} zam yapıldı. Kirası ${g.money(rent)} ise geriye kaç TL kalır?`
        : `${a} earns ${g.money(x)}, gets a ${p}% raise and pays ${g.money(rent)} rent. How many dollars are left?`;
      return {
        q,
        steps: [g.step([x, "*", p, "/", 100], d), g.step([x, "+", d], x + d), g.step([x + d, "-", rent], r)],
        answer: r,
      };
    },
  },
  {
    name: "bulk-discount",
    ops: 3,
    gen(g) {
      const it = g.item();
      const n = g.level === 1 ? g.int(2, 6) : g.count();
      const p0 = g.price();
      const p = g.pick([10, 20, 25, 50]);
      const unit = 100 / gcd(p, 100);
      const t0 = p0 * n;
      if (t0 % unit !== 0) return null;
      const d = (t0 * p) / 100;
      const q = g.tr()
        ? `Tanesi ${g.money(p0)} olan ${g.n(n)} ${it.tr} alana %${p} indirim var. Toplam kaç TL ödenir?`
        : `${g.n(n)} ${it.enPl} cost ${g.money(p0)} each, with ${p}% off the total. How many dollars to pay?`;
      return {
        q,
        steps: [g.step([p0, "*", n], t0), g.step([t0, "*", p, "/", 100], d), g.step([t0, "-", d], t0 - d)],
        answer: t0 - d,
      };
    },
  },
];

export const TEMPLATE_NAMES: readonly string[] = T.map((t) => t.name);

export interface SynthOptions {
  lang: Lang;
  n: number;
  seed: number | string;
  /** Allowed operation counts (default 1,2,3). */
  ops?: number[];
  /** Allowed magnitude levels (default 1,2,3). */
  levels?: number[];
  /** Only these templates (default all). */
  templates?: string[];
  maxQuestionChars?: number;
  maxSolutionChars?: number;
  /** Questions never to produce (e.g. a test set's). */
  exclude?: Set<string>;
  /** id prefix (default `synth-<lang>-s<seed>`). */
  idPrefix?: string;
  /**
   * Share (0–1) of solutions written in a looser layout than the strict one (see {@link looseSolution}),
   * for warm-up sets of a base model that should not always follow the format. 0 (default) leaves the
   * output byte-identical to a set made without the option.
   */
  looseFormat?: number;
  /** Reject problems with any number (in the question or a worked step) above this (default: no limit). */
  maxNumber?: number;
  /**
   * Share (0–1) of solutions with an arithmetic slip: the last worked step's result, and so the written
   * answer, is off by a small non-zero amount (see {@link slipSolution}); the row's `answer` stays the
   * true one and `meta.slip` records the offset. For warm-up sets of a base model that should be right
   * more often than any one wrong answer, not always. 0 (default) leaves the output byte-identical.
   */
  slips?: number;
}

/** Offsets a slip may add to a result (one is drawn uniformly among those that keep it in range). */
export const SLIP_OFFSETS: readonly number[] = [-3, -2, -1, 1, 2, 3];

/**
 * The worked steps with the last step's result replaced by `answer + offset` (its text after the last
 * "="), and that wrong answer; null when the last step does not end in the answer.
 */
export function slipSolution(
  steps: string[],
  answer: number,
  offset: number,
  lang: Lang,
): { steps: string[]; answer: string } | null {
  const last = steps[steps.length - 1];
  const eq = last.lastIndexOf("=");
  if (eq < 0 || last.slice(eq + 1) !== formatInt(answer, lang)) return null;
  const wrong = formatInt(answer + offset, lang);
  return { steps: [...steps.slice(0, -1), `${last.slice(0, eq + 1)}${wrong}`], answer: wrong };
}

/** The largest number in a problem's question and worked steps (numbers read in either locale's grouping). */
function maxNumberIn(out: Out): number {
  let m = 0;
  for (const t of [out.q, ...out.steps])
    for (const x of t.match(/\d+(?:[.,]\d{3})*/g) ?? []) m = Math.max(m, Number(x.replace(/[.,]/g, "")));
  return m;
}

/** Problems and drills alike need a non-negative integer answer. */
function answerUsable(out: Out): boolean {
  return Number.isSafeInteger(out.answer) && out.answer >= 0;
}

/** Some number of the problem (question or steps) exceeds `maxNumber` (never when it is unset). */
function exceedsMax(out: Out, maxNumber: number | undefined): boolean {
  return maxNumber !== undefined && maxNumberIn(out) > maxNumber;
}

export function solutionText(steps: string[], answer: string, lang: Lang): string {
  const [r, a] = lang === "tr" ? ["mantık", "cevap"] : ["reasoning", "answer"];
  return `<${r}>\n${steps.join("\n")}\n</${r}>\n<${a}>\n${answer}\n</${a}>`;
}

/** The loose layouts of {@link looseSolution}, in the order they are drawn. */
export const LOOSE_LAYOUTS = ["no-reasoning-tags", "plain-answer", "leading-text"] as const;
export type LooseLayout = (typeof LOOSE_LAYOUTS)[number];

/**
 * A worked solution in a looser layout. `no-reasoning-tags`: the steps without the reasoning tags, then
 * the answer tags (strict extraction rejects it, flexible finds the answer); `plain-answer`: the reasoning
 * tags, then "Cevap: N" / "Answer: N" without answer tags (both modes reject it); `leading-text`: a short
 * heading, then the strict layout (strict rejects it, flexible finds the answer). None puts text after the
 * closing answer tag, where generation stops.
 */
export function looseSolution(steps: string[], answer: string, lang: Lang, layout: LooseLayout): string {
  const [r, a] = lang === "tr" ? ["mantık", "cevap"] : ["reasoning", "answer"];
  const body = steps.join("\n");
  if (layout === "no-reasoning-tags") return `${body}\n<${a}>\n${answer}\n</${a}>`;
  if (layout === "plain-answer")
    return `<${r}>\n${body}\n</${r}>\n${lang === "tr" ? "Cevap" : "Answer"}: ${answer}`;
  return `${lang === "tr" ? "Çözüm" : "Solution"}:\n${solutionText(steps, answer, lang)}`;
}

export interface SynthStats {
  attempts: number;
  rejected: Record<string, number>;
  byOps: Record<string, number>;
  byLevel: Record<string, number>;
  byTemplate: Record<string, number>;
  /** Solutions written in each loose layout (only with looseFormat > 0). */
  byLayout: Record<string, number>;
  /** Solutions written with an arithmetic slip (only with slips > 0). */
  slipped: number;
}

/**
 * Options that cannot give a data set, naming the `SynthOptions` fields (`ops`, `levels`, …), not a command's
 * flags: the CLI maps them to its flags. A usage error (exit 2).
 */
export class SynthOptionError extends UsageError {
  readonly options: (keyof SynthOptions)[];
  readonly detail: string;
  constructor(options: keyof SynthOptions | (keyof SynthOptions)[], detail: string) {
    const names = [options].flat();
    super(`${names.join("/")}: ${detail}`);
    this.name = "SynthOptionError";
    this.options = names;
    this.detail = detail;
  }
}

/** Generate n distinct problems; deterministic in (options, seed). */
export function synthesize(opts: SynthOptions): { rows: DataRow[]; stats: SynthStats } {
  const lang = opts.lang;
  if (!LANGS.includes(lang))
    throw new SynthOptionError("lang", `must be one of ${LANGS.join(", ")}, got "${lang}"`);
  const ops = opts.ops ?? [1, 2, 3];
  const levels = opts.levels ?? [1, 2, 3];
  for (const o of ops)
    if (![1, 2, 3].includes(o)) throw new SynthOptionError("ops", `values must be 1, 2 or 3, got ${o}`);
  for (const l of levels)
    if (![1, 2, 3].includes(l)) throw new SynthOptionError("levels", `values must be 1, 2 or 3, got ${l}`);
  if (opts.templates)
    for (const t of opts.templates)
      if (!TEMPLATE_NAMES.includes(t))
        throw new SynthOptionError(
          "templates",
          `unknown template "${t}" (known: ${TEMPLATE_NAMES.join(", ")})`,
        );
  const pool = T.filter((t) => !opts.templates || opts.templates.includes(t.name));
  const byOps = new Map<number, Template[]>();
  for (const o of ops) {
    const ts = pool.filter((t) => t.ops === o);
    if (ts.length > 0) byOps.set(o, ts);
  }
  const opChoices = [...byOps.keys()].sort();
  if (opChoices.length === 0) throw new SynthOptionError(["ops", "templates"], "no template matches");
  const maxQ = opts.maxQuestionChars ?? 120;
  const maxS = opts.maxSolutionChars ?? 120;
  const rng = new Rng(opts.seed).fork(`synth/${lang}`);
  const prefix = opts.idPrefix ?? `synth-${lang}-s${opts.seed}`;
  const width = Math.max(4, String(opts.n).length);
  const seen = new Set<string>();
  const rows: DataRow[] = [];
  const loose = opts.looseFormat ?? 0;
  if (!(loose >= 0 && loose <= 1))
    throw new SynthOptionError("looseFormat", `must be in [0, 1], got ${loose}`);
  // A separate stream, so that looseFormat = 0 draws nothing from it and leaves the output unchanged.
  const layoutRng = new Rng(opts.seed).fork(`synth/${lang}/layout`);
  const slips = opts.slips ?? 0;
  if (!(slips >= 0 && slips <= 1)) throw new SynthOptionError("slips", `must be in [0, 1], got ${slips}`);
  const slipRng = new Rng(opts.seed).fork(`synth/${lang}/slips`);
  const stats: SynthStats = {
    attempts: 0,
    rejected: {},
    byOps: {},
    byLevel: {},
    byTemplate: {},
    byLayout: {},
    slipped: 0,
  };
  const reject = (why: string) => {
    stats.rejected[why] = (stats.rejected[why] ?? 0) + 1;
  };
  const maxAttempts = Math.max(1000, opts.n * 200);
  while (rows.length < opts.n) {
    if (++stats.attempts > maxAttempts)
      throw new SynthOptionError(
        ["ops", "levels", "maxQuestionChars"],
        `could only make ${rows.length} of ${opts.n} distinct problems in ${maxAttempts} attempts; allow more operations or levels, or longer questions`,
      );
    const o = opChoices[rng.int(opChoices.length)];
    const list = byOps.get(o)!;
    const tmpl = list[rng.int(list.length)];
    const level = levels[rng.int(levels.length)];
    const out = tmpl.gen(new G(rng, lang, level));
    if (!out) {
      reject("template n/a at level");
      continue;
    }
    if (!answerUsable(out)) {
      reject("answer not a non-negative integer");
      continue;
    }
    const answer = formatInt(out.answer, lang);
    const solution = solutionText(out.steps, answer, lang);
    if (out.q.length > maxQ) {
      reject("question too long");
      continue;
    }
    if (solution.length > maxS) {
      reject("solution too long");
      continue;
    }
    if (exceedsMax(out, opts.maxNumber)) {
      reject("number too large");
      continue;
    }
    if (seen.has(out.q)) {
      reject("duplicate");
      continue;
    }
    if (opts.exclude?.has(out.q)) {
      reject("excluded");
      continue;
    }
    seen.add(out.q);
    let steps = out.steps;
    let shown = answer;
    let slip = 0;
    if (slips > 0 && slipRng.next() < slips) {
      const max = opts.maxNumber ?? Number.POSITIVE_INFINITY;
      const ok = SLIP_OFFSETS.filter((d) => out.answer + d >= 0 && out.answer + d <= max);
      const d = ok[slipRng.int(ok.length)];
      const s = slipSolution(out.steps, out.answer, d, lang);
      if (s) {
        ({ steps, answer: shown } = s);
        slip = d;
        stats.slipped++;
      }
    }
    let written = slip ? solutionText(steps, shown, lang) : solution;
    if (loose > 0 && layoutRng.next() < loose) {
      const layout = LOOSE_LAYOUTS[layoutRng.int(LOOSE_LAYOUTS.length)];
      written = looseSolution(steps, shown, lang, layout);
      stats.byLayout[layout] = (stats.byLayout[layout] ?? 0) + 1;
    }
    rows.push({
      id: `${prefix}-${String(rows.length + 1).padStart(width, "0")}`,
      question: out.q,
      answer: String(out.answer),
      solution: written,
      source: `synth-${lang}`,
      meta: slip
        ? { template: tmpl.name, ops: tmpl.ops, level, slip }
        : { template: tmpl.name, ops: tmpl.ops, level },
    });
    const inc = (m: Record<string, number>, k: string | number) => {
      m[k] = (m[k] ?? 0) + 1;
    };
    inc(stats.byOps, tmpl.ops);
    inc(stats.byLevel, level);
    inc(stats.byTemplate, tmpl.name);
  }
  return { rows, stats };
}

/** An arithmetic drill row for supervised warm-up: `{id, text}`, trained on every token by `ttrl sft`. */
export interface DrillRow {
  id: string;
  text: string;
}

/**
 * Arithmetic drills: the worked steps ("12*3=36", "1.250+36=1.286") of freshly generated problems with
 * the same language, operation counts, levels and templates, `linesPerRow` steps per row, so a small
 * model sees many more sums and products per token than full word problems give it. Deterministic in
 * (options, seed); draws from its own stream, so adding drills never changes the problems.
 */
export function synthesizeDrills(opts: SynthOptions, n: number, linesPerRow = 8): DrillRow[] {
  const ops = opts.ops ?? [1, 2, 3];
  const levels = opts.levels ?? [1, 2, 3];
  const pool = T.filter((t) => ops.includes(t.ops) && (!opts.templates || opts.templates.includes(t.name)));
  if (pool.length === 0) throw new SynthOptionError(["ops", "templates"], "no template matches");
  const rng = new Rng(opts.seed).fork(`synth/${opts.lang}/drills`);
  const prefix = `${opts.idPrefix ?? `synth-${opts.lang}-s${opts.seed}`}-drill`;
  const width = Math.max(4, String(n).length);
  const rows: DrillRow[] = [];
  let lines: string[] = [];
  let misses = 0;
  while (rows.length < n) {
    const tmpl = pool[rng.int(pool.length)];
    const out = tmpl.gen(new G(rng, opts.lang, levels[rng.int(levels.length)]));
    if (!out || !answerUsable(out) || exceedsMax(out, opts.maxNumber)) {
      if (++misses > 1000 + n * 200)
        throw new SynthOptionError(["ops", "levels"], "could not make drills for these values");
      continue;
    }
    for (const st of out.steps) {
      lines.push(st);
      if (lines.length === linesPerRow) {
        rows.push({
          id: `${prefix}-${String(rows.length + 1).padStart(width, "0")}`,
          text: lines.join("\n"),
        });
        lines = [];
        if (rows.length === n) break;
      }
    }
  }
  return rows;
}
