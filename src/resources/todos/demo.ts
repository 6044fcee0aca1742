import { pick, random } from '../../lib/random.js'

export const SEED_TODOS = 300

/** Each action with things it is done to, so every title reads like a real todo. */
const TASKS: Record<string, string[]> = {
  Buy: ['groceries', 'milk and eggs', 'a birthday present for Sam', 'new running shoes', 'printer ink', 'coffee beans', 'light bulbs', 'a winter coat', 'stamps', 'dog food', 'a new phone charger', 'flowers for Mum', 'batteries', 'a plant pot', 'cat litter'],
  Call: ['the dentist', 'the landlord', 'the bank', 'Grandma', 'the plumber', 'the insurance company', 'the vet', 'the electrician', 'the school', 'the tax office', 'Aunt Rosa', 'the garage', 'the internet provider', 'the doctor', 'the removal company'],
  Fix: ['the bike tyre', 'the leaking tap', 'the garden fence', 'the login bug', 'the squeaky door', 'the wobbly chair', 'the broken shelf', 'the flaky CI test', 'the kitchen drawer', 'the doorbell', 'the printer', 'the typo on the website', 'the gutter', 'the shower head', 'the memory leak'],
  Book: ['a haircut', 'flights to Lisbon', 'a table for Friday', 'the car service', 'a dentist check-up', 'the holiday cottage', 'a massage', 'train tickets to Leeds', 'the meeting room', 'a piano lesson', 'the eye test', 'concert tickets', 'a babysitter', 'the annual boiler check', 'a driving lesson'],
  Clean: ['the garage', 'the oven', 'the windows', 'the fridge', 'the car', 'the bathroom', 'the gutters', 'the barbecue', 'the desk', 'the carpets', 'the balcony', 'the bike chain', 'the inbox', 'the attic', 'the fish tank'],
  Email: ['the quarterly report', 'the landlord about the heating', 'HR about leave', 'the team the agenda', 'the client the invoice', 'the school about the trip', 'Sam the photos', 'the accountant', 'the new starter a welcome note', 'the supplier about the delay', 'the council about the bins', 'the recruiter back', 'the slides to Priya', 'the contract to legal', 'the neighbours about the party'],
  Renew: ['the passport', 'the car insurance', 'the gym membership', 'the library books', 'the domain name', 'the TLS certificates', 'the driving licence', 'the parking permit', 'the home insurance', 'the prescription', 'the magazine subscription', 'the TV licence', 'the travel insurance', 'the software licences', 'the museum membership'],
  Plan: ['the team offsite', 'the summer holiday', "Sam's birthday party", 'the garden makeover', 'next week\'s meals', 'the sprint', 'the move', 'the wedding speech', 'the budget for next year', 'the reading list', 'the marathon training', 'the Christmas dinner', 'the product launch', 'the reunion', 'the kitchen renovation'],
  Pay: ['the electricity bill', 'the rent', 'the council tax', 'the water bill', 'the nursery fees', 'the credit card', 'the phone bill', 'the parking fine', 'the window cleaner', 'the builder', 'the accountant', 'the music teacher', 'the gardener', 'the broadband bill', 'the vet bill'],
  Review: ['the pull request', 'the budget', 'the design document', 'the pension statement', 'the lease', 'the interview notes', 'the quarterly goals', 'the insurance policy', 'the test plan', 'the onboarding guide', 'the mortgage offer', 'the release notes', 'the security audit', 'the bank statements', 'the job description'],
  Water: ['the plants', 'the tomatoes', 'the herb garden', 'the new hedge', 'the orchids', 'the hanging baskets', 'the lawn', 'the seedlings', 'the neighbours\' plants', 'the office ferns', 'the strawberries', 'the window boxes', 'the apple tree', 'the cactus', 'the vegetable patch'],
  Paint: ['the fence', 'the bedroom', 'the front door', 'the garden shed', 'the kitchen cupboards', 'the hallway', 'the window frames', 'the bookshelf', 'the radiator', 'the ceiling', 'the garage door', 'the bathroom', 'the old dresser', 'the gate', 'the skirting boards'],
  Return: ['the library books', 'the parcel to the shop', 'the borrowed drill', "Sam's jacket", 'the rental car', 'the faulty kettle', 'the hired suit', 'the board game to Priya', 'the keys to the landlord', 'the empty bottles', 'the shoes that pinch', 'the ladder to next door', 'the work laptop', 'the DVD box set', 'the camping gear'],
  Schedule: ['the one-to-ones', 'the car MOT', 'the flu jab', 'the chimney sweep', 'the team retro', 'the boiler service', 'the window cleaning', 'the piano tuning', 'the parents\' evening', 'the load test', 'the database upgrade', 'the photo shoot', 'the gutter cleaning', 'the performance review', 'the pest control visit'],
  Update: ['the CV', 'the project README', 'the emergency contacts', 'the home inventory', 'the laptop', 'the family calendar', 'the address on the bank account', 'the dependencies', 'the wiki page', 'the LinkedIn profile', 'the router firmware', 'the will', 'the on-call rota', 'the price list', 'the shared spreadsheet'],
  'Back up': ['the photos', 'the laptop', 'the phone', 'the database', 'the wedding videos', 'the tax documents', 'the music library', 'the website', 'the password vault', 'the recipes', 'the old hard drive', 'the thesis', 'the mailbox', 'the game saves', 'the scanned letters'],
  Read: ['the contract', 'the new novel', 'the board papers', 'the instruction manual', 'the school newsletter', 'the research paper', 'the lease renewal', 'the RFC on problem details', 'the book club pick', 'the safety briefing', 'the travel guide', 'the annual report', 'the course notes', 'the postmortem', 'the gardening magazine'],
  Sort: ['the old photos', 'the recycling', 'the sock drawer', 'the receipts', 'the toy box', 'the tool shed', 'the bookshelves', 'the spice rack', 'the wardrobe', 'the cables box', 'the paperwork', 'the Lego', 'the loft', 'the freezer', 'the email folders'],
  Order: ['a new mattress', 'the school uniform', 'more firewood', 'a replacement filter', 'the team lunch', 'business cards', 'a new passport photo', 'the paint samples', 'contact lenses', 'a cake for Friday', 'a bigger monitor', 'the garden soil', 'new tyres', 'curtains for the study', 'a spare key'],
  Cancel: ['the unused streaming service', 'the old phone contract', 'the magazine subscription', 'the dentist appointment on Monday', 'the newspaper delivery', 'the trial account', 'the hotel booking in March', 'the gym direct debit', 'the duplicate order', 'the milk delivery', 'the extended warranty', 'the meeting on Thursday', 'the old bank account', 'the storage unit', 'the spare credit card']
}
const LABELS = ['home', 'work', 'errand', 'phone', 'money', 'health', 'family', 'garden', 'quick']
const NOTES = ['before the weekend', 'ask for a discount', 'the receipt is in the drawer', 'see email from Tuesday', 'needs two people', 'compare three quotes first', null, null, null]

/** The demo todos: SEED_TODOS of them, titles unique, due dates relative to now. */
export function demoTodos() {
  const next = random(20240501)
  const now = Date.now()
  const combos = Object.entries(TASKS).flatMap(([action, things]) => things.map((thing) => `${action} ${thing}`))
  // A fixed shuffle of every combination, then the first SEED_TODOS: unique titles.
  for (let i = combos.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[combos[i], combos[j]] = [combos[j] as string, combos[i] as string]
  }
  return combos.slice(0, SEED_TODOS).map((title, index) => ({
    title,
    description: pick(next, NOTES),
    completed: next() < 0.35,
    order: next() < 0.15 ? null : index + 1,
    due_date: next() < 0.25 ? null : new Date(now + (Math.floor(next() * 120) - 30) * 86_400_000).toISOString(),
    // Mostly none or one label, now and then two; mostly normal priority, a few urgent.
    labels: next() < 0.4 ? [] : next() < 0.8 ? [pick(next, LABELS)] : [pick(next, LABELS), pick(next, LABELS)],
    priority: [1, 1, 1, 1, 2, 2, 3, 4][Math.floor(next() * 8)] as number
  }))
}
