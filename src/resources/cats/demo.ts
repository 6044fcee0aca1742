import { pick, random } from '../../lib/random.js'

export const SEED_CATS = 200

const CAT_NAMES = ['Mittens', 'Whiskers', 'Luna', 'Oliver', 'Milo', 'Nala', 'Simba', 'Cleo', 'Tigger', 'Smokey', 'Pepper', 'Ginger', 'Shadow', 'Pumpkin', 'Biscuit', 'Mochi', 'Pixel', 'Noodle', 'Waffles', 'Ziggy']
const CAT_TITLES = ['', 'Sir ', 'Lady ', 'Captain ', 'Professor ', 'Little ', 'Big ', 'Duchess ', 'Doctor ', 'Agent ']
const CAT_SUFFIXES = ['', ' the Great', ' Junior', ' McFluff', ' of the Sofa']
const BREEDS = ['bengal', 'siamese', 'persian', 'maine coon', 'ragdoll', 'british shorthair', 'sphynx', 'abyssinian', 'scottish fold', 'burmese', 'norwegian forest', 'russian blue']

/** The demo cats: SEED_CATS of them, names unique. */
export function demoCats() {
  const next = random(19700101)
  const names = CAT_TITLES.flatMap((title) => CAT_NAMES.flatMap((name) => CAT_SUFFIXES.map((suffix) => `${title}${name}${suffix}`)))
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[names[i], names[j]] = [names[j] as string, names[i] as string]
  }
  return names.slice(0, SEED_CATS).map((name) => ({
    name,
    breed: next() < 0.1 ? null : pick(next, BREEDS),
    // Whole euros mostly, from adoption fees to pedigree prices, a few free.
    price: next() < 0.05 ? 0 : Math.round(next() ** 2 * 2500) * 100 + (next() < 0.2 ? 99 : 0)
  }))
}
