/** The demo lists: a few a todo app starts with (every row names every column the seeder writes). */
export const demoLists = () => [
  { title: 'Home', colour: 'green' as const, archived: false, position: 1 },
  { title: 'Work', colour: 'blue' as const, archived: false, position: 2 },
  { title: 'Shopping', colour: 'orange' as const, archived: false, position: 3 },
  { title: 'Someday', colour: 'purple' as const, archived: true, position: null }
]
