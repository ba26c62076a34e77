"""Small real-text catalogs with clearly separated themes."""

from __future__ import annotations

SPACE = [
    "Apollo mission: astronauts fly a rocket to the Moon and land on the lunar surface.",
    "Mars colony: settlers build a base on the red planet after a long spaceflight.",
    "Orbit: a crew repairs the space station while drifting above the Earth.",
    "Starship voyage: a spacecraft crosses the galaxy to reach a distant star system.",
    "Launch day: engineers count down as the rocket lifts off toward orbit.",
    "Lost in space: a stranded astronaut survives alone on a spaceship.",
    "Black hole: a spaceship crew travels near a black hole at the edge of the galaxy.",
    "Moonwalk: the first astronauts step onto the Moon in a historic space mission.",
    "Comet chase: a space probe follows a comet through the solar system.",
    "Saturn rings: a robotic spacecraft explores the rings and moons of Saturn.",
]
COOKING = [
    "Pasta night: a chef makes fresh Italian pasta with tomato sauce and basil.",
    "Baking bread: kneading dough and baking crusty sourdough loaves in the oven.",
    "Sushi master: a cook prepares rice, raw fish and seaweed rolls.",
    "Grill season: barbecue recipes for steak, burgers and grilled vegetables.",
    "Chocolate cake: a pastry chef bakes a rich dessert with cocoa and cream.",
    "Curry kitchen: slow-cooked spicy curries with rice and flatbread.",
    "Soup recipes: warming vegetable soups cooked in a big pot.",
    "Breakfast cooking: pancakes, eggs and bacon in a frying pan.",
    "Street food: tacos and grilled corn cooked at a market stall.",
    "Salad bar: fresh greens, dressings and crunchy toppings for healthy lunches.",
]
GARDEN = [
    "Rose garden: pruning and watering roses in a sunny backyard.",
    "Vegetable patch: planting tomatoes, carrots and beans in garden soil.",
    "Lawn care: mowing, seeding and fertilising a green lawn.",
    "Houseplants: caring for ferns and succulents indoors.",
    "Composting: turning kitchen scraps into rich soil for the garden.",
]

NEW_SPACE_ITEM = (
    "Rocket to the stars: astronauts launch a spacecraft into orbit and travel through space."
)
