/** Vocabulary for categories and item titles. Plain data: the titles only need to look plausible. */

export interface CategoryWords {
  readonly name: string;
  readonly nouns: readonly string[];
  /** Typical price in the category (the log-normal's median), so prices differ by category as in real shops. */
  readonly medianPrice: number;
  /** Whether a size in inches (`27" Monitor`) is natural: exercises RFC 4180 quote escaping in titles. */
  readonly inches?: boolean;
}

export const CATEGORIES: readonly CategoryWords[] = [
  {
    name: 'electronics',
    nouns: ['Monitor', 'Headphones', 'Speaker', 'Charger', 'Webcam', 'Tablet', 'Router'],
    medianPrice: 120,
    inches: true,
  },
  {
    name: 'books',
    nouns: ['Novel', 'Cookbook', 'Biography', 'Atlas', 'Poetry Collection', 'Field Guide'],
    medianPrice: 15,
  },
  {
    name: 'home',
    nouns: ['Lamp', 'Rug', 'Mirror', 'Vase', 'Cushion', 'Curtain', 'Clock'],
    medianPrice: 40,
    inches: true,
  },
  {
    name: 'kitchen',
    nouns: ['Skillet', 'Knife', 'Kettle', 'Blender', 'Cutting Board', 'Mug', 'Colander'],
    medianPrice: 30,
  },
  {
    name: 'toys',
    nouns: ['Puzzle', 'Building Set', 'Plush Bear', 'Kite', 'Robot Kit', 'Board Game'],
    medianPrice: 25,
  },
  {
    name: 'beauty',
    nouns: ['Serum', 'Lipstick', 'Face Cream', 'Shampoo', 'Perfume', 'Nail Polish'],
    medianPrice: 20,
  },
  {
    name: 'sports',
    nouns: ['Yoga Mat', 'Dumbbell', 'Tennis Racket', 'Water Bottle', 'Jump Rope', 'Football'],
    medianPrice: 35,
  },
  {
    name: 'garden',
    nouns: ['Planter', 'Hose', 'Pruner', 'Bird Feeder', 'Seed Mix', 'Trowel'],
    medianPrice: 25,
  },
  {
    name: 'fashion',
    nouns: ['T-Shirt', 'Jacket', 'Scarf', 'Dress', 'Jeans', 'Hoodie', 'Belt'],
    medianPrice: 45,
  },
  {
    name: 'shoes',
    nouns: ['Sneakers', 'Boots', 'Sandals', 'Loafers', 'Slippers', 'Running Shoes'],
    medianPrice: 70,
  },
  {
    name: 'jewelry',
    nouns: ['Necklace', 'Ring', 'Bracelet', 'Earrings', 'Watch', 'Pendant'],
    medianPrice: 90,
  },
  {
    name: 'grocery',
    nouns: ['Coffee Beans', 'Olive Oil', 'Green Tea', 'Pasta', 'Honey', 'Granola'],
    medianPrice: 8,
  },
  {
    name: 'pet',
    nouns: ['Dog Leash', 'Cat Tree', 'Pet Bed', 'Chew Toy', 'Litter Box', 'Aquarium Filter'],
    medianPrice: 22,
  },
  {
    name: 'automotive',
    nouns: ['Car Mat', 'Dash Cam', 'Tire Inflator', 'Wiper Blades', 'Seat Cover'],
    medianPrice: 40,
  },
  {
    name: 'office',
    nouns: ['Notebook', 'Desk Organizer', 'Stapler', 'Fountain Pen', 'Office Chair', 'Planner'],
    medianPrice: 18,
  },
  {
    name: 'music',
    nouns: ['Guitar Strings', 'Ukulele', 'Vinyl Record', 'Drum Sticks', 'Keyboard Stand'],
    medianPrice: 30,
  },
  {
    name: 'games',
    nouns: ['Controller', 'Gaming Mouse', 'Strategy Game', 'Racing Game', 'Headset'],
    medianPrice: 50,
  },
  {
    name: 'health',
    nouns: ['Vitamin D', 'Thermometer', 'First Aid Kit', 'Massage Gun', 'Protein Powder'],
    medianPrice: 25,
  },
  {
    name: 'baby',
    nouns: ['Stroller', 'Baby Monitor', 'Bib Set', 'Teether', 'Crib Sheet', 'Diaper Bag'],
    medianPrice: 35,
  },
  {
    name: 'tools',
    nouns: ['Drill', 'Screwdriver Set', 'Tape Measure', 'Wrench', 'Tool Box', 'Level'],
    medianPrice: 45,
    inches: true,
  },
];

export const ADJECTIVES: readonly string[] = [
  'Classic',
  'Compact',
  'Deluxe',
  'Eco',
  'Essential',
  'Premium',
  'Pro',
  'Rustic',
  'Smart',
  'Vintage',
  'Ultra',
  'Portable',
  'Handmade',
  'Modern',
  'Everyday',
  'Lightweight',
  'Organic',
  'Heavy-Duty',
  'Mini',
  'Signature',
];

export const BRANDS: readonly string[] = [
  'Acme',
  'Northwind',
  'Brightline',
  'Oakridge',
  'Lumen',
  'Kestrel',
  'Maple & Co',
  'Nimbus',
  'Solace',
  'Vireo',
  'Juniper',
  'Halcyon',
  'Tandem',
  'Quarry',
  'Bluefin',
  'Corvid',
];

export const COLOURS: readonly string[] = [
  'Black',
  'White',
  'Red',
  'Blue',
  'Green',
  'Grey',
  'Navy',
  'Sand',
  'Olive',
  'Rose',
];
