"""Generate the zero_shot_classification demo: NLI pairs to train on, zero-shot choices to test.

Run from anywhere: ``python plugins/data/zero_shot_demo/make_zero_shot.py``. Deterministic
(fixed seed), standard library only, so re-running reproduces the files.

* ``train.jsonl`` / ``validation.jsonl``: premise/hypothesis pairs (``text``, ``hypothesis``,
  ``label`` = entailment | contradiction). Premises are captions of the 50 SEEN categories
  below, written from hand-made item phrases and scene templates, plus the bundled
  ``food_captions`` (hypothesis "food": entailment for the food captions, contradiction
  for the others). Every caption gets one entailed and one contradicted hypothesis; a
  category goes by any of its names (or its kind: "food", "an animal"), the wrong name is
  a same-kind category half the time, and the hypothesis template varies, so the model
  learns to match meanings rather than a few label words in one sentence frame.
* ``test.jsonl``: zero-shot choices over the 9 UNSEEN categories (``text``,
  ``candidate_labels``: the right category and three others, shuffled; ``label``). No
  unseen category name is ever a training hypothesis, and their captions come from their
  own item phrases.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
FOOD_CAPTIONS = HERE.parent / "food_captions"
SEED = 20240620

# ---------------------------------------------------------------- scene templates
# One list per kind of thing; {} is the item phrase (capitalised when it opens the caption).
TEMPLATES = {
    "dish": [
        "{} on a wooden table.",
        "A close-up of {} in a small cafe.",
        "Someone taking a photo of {} before eating.",
        "{} served on a white plate at a restaurant.",
        "A street vendor selling {} at a night market.",
        "A family sharing {} at dinner.",
        "{} next to a glass of water.",
        "A cook preparing {} in a busy kitchen.",
        "A child eating {} at the kitchen table.",
        "{} packed in a lunch box.",
        "A picnic blanket with {} and paper napkins.",
        "{} on a tray by the window.",
        "A waiter carrying {} to a corner table.",
        "Half of {} left on the counter.",
    ],
    "drink": [
        "{} on a wooden table.",
        "A close-up of {} in a small cafe.",
        "Someone holding {} on a cold morning.",
        "{} next to an open laptop.",
        "A barista handing over {}.",
        "{} on a saucer by the window.",
        "Two friends chatting over {}.",
        "{} on a desk beside a notebook.",
        "A woman sipping {} on a balcony.",
        "{} on the counter of a busy shop.",
        "A tray with {} and a napkin.",
        "{} steaming on a kitchen table.",
    ],
    "animal": [
        "{} sleeping on a couch.",
        "{} running across a field.",
        "A child playing with {} in the garden.",
        "{} sitting by the window.",
        "A photo of {} in the snow.",
        "{} looking straight at the camera.",
        "{} drinking from a puddle.",
        "A vet examining {}.",
        "{} resting in the shade of a tree.",
        "An old man walking with {} at dawn.",
        "{} standing in the rain.",
        "A blurry picture of {} in motion.",
    ],
    "vehicle": [
        "{} in the rain.",
        "A photo of {} at sunset.",
        "{} seen from far away.",
        "A man repairing {}.",
        "{} covered in dust.",
        "Tourists taking pictures of {}.",
        "{} painted bright red.",
        "An old photograph of {}.",
        "{} waiting in the morning fog.",
        "A child pointing at {}.",
        "{} under a cloudy sky.",
        "A crowd gathered around {}.",
    ],
    "activity": [
        "{} on a sunny afternoon.",
        "{} in front of a big crowd.",
        "A blurry photo of {}.",
        "{} during the final of the championship.",
        "Kids watching {}.",
        "{} under bright floodlights.",
        "A newspaper photo of {}.",
        "{} on a windy day.",
        "A coach filming {}.",
        "{} at a school competition.",
    ],
    "place": [
        "A view of {}.",
        "{} at sunrise.",
        "Tourists walking along {}.",
        "A postcard of {}.",
        "{} under a cloudy sky.",
        "A drone photo of {}.",
        "{} on a quiet winter morning.",
        "A painting of {}.",
        "{} after a summer storm.",
        "A family hiking near {}.",
    ],
    "object": [
        "{} in a living room.",
        "Someone using {} late at night.",
        "A close-up of {}.",
        "{} for sale in a shop window.",
        "{} covered in dust in an attic.",
        "A teenager with {} in a bedroom.",
        "{} on a stage under a spotlight.",
        "A teacher showing {} to a class.",
        "{} in an empty classroom.",
        "A photo of {} next to a lamp.",
    ],
}

# ------------------------------------------------------------------ categories
# name -> (template kind, item phrases). Items mostly avoid the category's own name.
SEEN = {
    "soup": ("dish", [
        "a bowl of tomato soup", "hot chicken noodle soup", "a bowl of miso soup", "creamy pumpkin soup",
        "a mug of clam chowder", "a bowl of French onion soup", "steaming minestrone", "a bowl of borscht",
        "spicy tom yum broth", "a cup of cold gazpacho", "split pea soup with croutons", "a bowl of beef pho",
    ]),
    "salad": ("dish", [
        "a caesar salad", "a bowl of mixed greens with cherry tomatoes", "a greek salad with feta and olives",
        "a plate of coleslaw", "a caprese salad with basil", "a bowl of kale and quinoa", "a potato salad",
        "a waldorf salad", "spinach leaves with walnuts and pear", "a nicoise salad", "a chopped cobb salad",
        "cucumber and radish slices in vinaigrette",
    ]),
    "bread": ("dish", [
        "a loaf of sourdough", "a crusty baguette", "a stack of warm pita", "sliced rye bread",
        "a basket of dinner rolls", "focaccia with rosemary", "a braided challah", "a sesame bagel",
        "a stack of naan", "whole wheat toast", "a ciabatta loaf", "squares of cornbread",
    ]),
    "cake": ("dish", [
        "a slice of chocolate cake", "a birthday cake with candles", "a cheesecake with berries",
        "a carrot cake with cream cheese frosting", "a three-tier wedding cake", "cupcakes with pink icing",
        "a red velvet cake", "a lemon drizzle cake", "a black forest gateau", "a bundt cake dusted with sugar",
        "a slice of sponge cake with jam", "a coffee cake with crumb topping",
    ]),
    "pizza": ("dish", [
        "a margherita pizza", "a pepperoni pizza", "a slice of cheese pizza", "a wood-fired pizza with basil",
        "a deep-dish pizza", "a calzone", "a pizza with mushrooms and olives", "a box of takeout pizza",
        "a hawaiian pizza with pineapple", "a thin-crust pizza", "a square slice of sicilian pizza",
        "a pizza fresh from a brick oven",
    ]),
    "fruit": ("dish", [
        "a bowl of apples and oranges", "sliced watermelon", "a bunch of bananas", "fresh strawberries",
        "a plate of mango slices", "a bunch of green grapes", "a pineapple cut into chunks", "a basket of peaches",
        "blueberries and raspberries", "a halved papaya", "kiwi slices", "a pile of dark cherries",
    ]),
    "coffee": ("drink", [
        "a cappuccino with latte art", "a cup of black coffee", "an espresso shot", "an iced latte",
        "a mug of filter coffee", "a flat white", "a french press of dark roast", "a macchiato",
        "a glass of cold brew", "a paper cup of americano", "a mocha with whipped cream", "a moka pot of espresso",
    ]),
    "juice": ("drink", [
        "a glass of orange juice", "a bottle of apple juice", "fresh carrot juice", "a glass of grape juice",
        "a pitcher of lemonade", "a green juice with celery and kale", "a cup of cranberry juice",
        "a carton of pineapple juice", "a glass of pomegranate juice", "freshly squeezed grapefruit juice",
        "a tall glass of mango juice", "a jug of tomato juice",
    ]),
    "dog": ("animal", [
        "a golden retriever", "a small terrier", "a sleepy beagle", "a black labrador puppy", "a husky",
        "a muddy border collie", "a tiny chihuahua", "a german shepherd", "a fluffy poodle", "a dachshund",
        "a bulldog with a red collar", "a spotted dalmatian",
    ]),
    "horse": ("animal", [
        "a brown mare", "a white stallion", "a young foal", "a chestnut pony", "a draft horse with a long mane",
        "a racehorse", "a grey horse with a saddle", "a wild mustang", "a horse in a striped blanket",
        "a shetland pony", "a black horse with a braided mane", "an old plough horse",
    ]),
    "bird": ("animal", [
        "a red robin", "a flock of sparrows", "a blue jay", "a seagull", "a green parrot", "a barn owl",
        "a hummingbird", "a pair of pigeons", "a woodpecker", "a bald eagle", "a crow", "a yellow canary",
    ]),
    "car": ("vehicle", [
        "a red sports car", "an old station wagon", "a silver sedan", "a taxi cab", "a small hatchback",
        "a convertible with the roof down", "a vintage coupe", "a police cruiser", "an electric car at a charger",
        "a muddy jeep", "a white minivan", "a rusty pickup truck",
    ]),
    "boat": ("vehicle", [
        "a small sailboat", "a wooden rowing boat", "a fishing trawler", "a speedboat", "a canoe",
        "a ferry full of passengers", "a kayak", "a yacht in the harbour", "a tugboat", "a houseboat",
        "an inflatable dinghy", "a gondola",
    ]),
    "airplane": ("vehicle", [
        "a jet on the runway", "a small propeller plane", "a passenger airliner", "a seaplane",
        "a cargo jet", "a glider", "a biplane", "a plane taking off", "a jumbo jet at the gate",
        "a fighter jet", "a crop duster", "a private jet",
    ]),
    "football": ("activity", [
        "a striker kicking the ball into the net", "a goalkeeper diving for a penalty",
        "two teams lining up for a kickoff", "a defender heading the ball", "kids dribbling a ball around cones",
        "a referee showing a yellow card", "a midfielder taking a corner kick", "players celebrating a goal",
        "a team in red shirts passing the ball", "a free kick over the wall", "a match on a muddy pitch",
        "a winger crossing the ball",
    ]),
    "swimming": ("activity", [
        "a swimmer doing the butterfly stroke", "a relay race in the pool", "a girl diving off the starting block",
        "swimmers in lanes doing freestyle", "a boy learning backstroke", "a swimmer turning at the wall",
        "an open water race in a lake", "a breaststroke heat", "a swimmer in goggles taking a breath",
        "a synchronised swimming routine", "a coach timing laps in the pool", "a swimmer touching the wall first",
    ]),
    "beach": ("place", [
        "a sandy shore with gentle waves", "a row of umbrellas on the sand", "a tropical coast with palm trees",
        "a pebbly seashore", "sand dunes by the sea", "a surf spot with big waves", "a lifeguard tower on the sand",
        "a quiet cove", "a boardwalk by the ocean", "a bay with turquoise water", "a shoreline covered in shells",
        "a crowded seaside",
    ]),
    "mountain": ("place", [
        "a snowy peak", "a rocky summit", "a range of jagged peaks", "an alpine ridge", "a volcano",
        "a steep cliff face", "a high pass above the clouds", "a glacier between peaks", "a forested slope",
        "a mountain hut under a summit", "a granite peak", "a trail to a high summit",
    ]),
    "guitar": ("object", [
        "an acoustic guitar", "an electric guitar", "a bass guitar", "a twelve-string guitar", "a classical guitar",
        "a guitar with a broken string", "a left-handed guitar", "a red electric guitar",
        "a guitar and an amplifier", "a vintage hollow-body guitar", "a travel guitar", "a guitar on a stand",
    ]),
    "computer": ("object", [
        "a laptop", "a desktop computer with two monitors", "an old beige computer", "a gaming pc with glowing fans",
        "a tablet with a keyboard", "a netbook", "a computer tower", "a laptop with stickers",
        "a workstation", "a computer with a mechanical keyboard", "an all-in-one computer", "a server rack",
    ]),
    "rice": ("dish", [
        "a bowl of fried rice", "steamed jasmine rice", "a pan of paella", "risotto with mushrooms",
        "a bowl of biryani", "rice with black beans", "sticky rice in a bamboo basket", "a rice bowl topped with an egg",
        "coconut rice", "a pot of jollof", "a pot of pilaf", "saffron rice with raisins",
    ]),
    "eggs": ("dish", [
        "scrambled eggs on toast", "a fried egg with a runny yolk", "an omelette with herbs", "two poached eggs",
        "a plate of deviled eggs", "soft boiled eggs in cups", "eggs benedict", "a frittata", "shakshuka in a skillet",
        "a carton of brown eggs", "a spanish tortilla", "a boiled egg cut in half",
    ]),
    "fried chicken": ("dish", [
        "crispy drumsticks", "a bucket of crunchy wings", "breaded chicken tenders", "buttermilk-battered thighs",
        "popcorn chicken", "golden chicken strips with a dip", "a basket of spicy wings", "a plate of karaage",
        "chicken nuggets", "a crispy chicken cutlet", "southern-style drumsticks with biscuits", "chicken katsu",
    ]),
    "hot chocolate": ("drink", [
        "a mug of cocoa with marshmallows", "a cup of hot cocoa", "dark drinking chocolate",
        "a steaming cocoa with whipped cream", "a mug of cocoa sprinkled with cinnamon", "a cup of Mexican drinking chocolate",
        "cocoa in a paper cup", "a thick Italian cioccolata", "a mug of warm cocoa", "a cocoa with a candy cane",
        "a cup of malted cocoa", "a mug of white chocolate milk, warmed",
    ]),
    "cow": ("animal", [
        "a dairy cow", "a black and white heifer", "a brown calf", "a herd of cattle", "a highland cow with long horns",
        "a bull", "a jersey cow", "a cow with a bell", "a grazing steer", "a longhorn", "a cow chewing grass", "a spotted calf",
    ]),
    "rabbit": ("animal", [
        "a white bunny", "a lop-eared rabbit", "a wild hare", "a brown bunny", "a rabbit nibbling a carrot",
        "a fluffy angora", "a baby bunny", "a grey rabbit", "a hare with long ears", "a rabbit in a hutch",
        "a dwarf rabbit", "a black and white bunny",
    ]),
    "motorcycle": ("vehicle", [
        "a harley", "a sport bike", "a scooter", "a chopper", "a dirt bike", "a vintage motorbike",
        "a touring motorbike with saddlebags", "a moped", "a cafe racer", "a motorbike with a sidecar", "a superbike",
        "a red vespa",
    ]),
    "truck": ("vehicle", [
        "a delivery lorry", "an eighteen-wheeler", "a dump truck", "a fire engine", "a tow truck", "a cement mixer",
        "a garbage truck", "a semi with a trailer", "a logging truck", "a fuel tanker", "a box truck", "a flatbed lorry",
    ]),
    "basketball": ("activity", [
        "a player dunking the ball", "a three-point shot", "a point guard dribbling past a defender",
        "a jump ball at center court", "a free throw", "a layup on a fast break", "a rebound under the hoop",
        "a streetball game", "a buzzer beater", "a team huddle on the court", "a block at the rim", "a pick and roll",
    ]),
    "running": ("activity", [
        "a marathon", "a sprinter out of the blocks", "joggers in the park", "a trail runner on a rocky path",
        "a relay on the track", "a 400 metre final", "runners crossing the finish line", "a cross-country race",
        "a woman jogging with earphones", "a hurdles race", "a charity fun run", "an ultramarathon",
    ]),
    "forest": ("place", [
        "tall pine trees", "a misty woodland", "a rainforest canopy", "a birch grove", "an oak wood in autumn",
        "a path through dense trees", "a redwood grove", "a jungle", "a clearing among firs", "a bamboo grove",
        "a mossy woodland", "a dark spruce wood",
    ]),
    "city": ("place", [
        "a downtown skyline", "a busy intersection", "skyscrapers at night", "a crowded avenue",
        "a street full of taxis", "an old town square", "a metropolis", "the rooftops of the capital",
        "a neon-lit street", "a harbour town", "a highway through downtown", "a park between office towers",
    ]),
    "book": ("object", [
        "a hardcover novel", "a stack of paperbacks", "an old leather-bound volume", "a dictionary",
        "a library copy of a novel", "a children's picture book", "an atlas", "a novel with a torn cover",
        "a pile of textbooks", "a first edition", "a poetry collection", "a comic album",
    ]),
    "phone": ("object", [
        "a smartphone", "an old flip phone", "a cracked smartphone screen", "a rotary telephone", "a cordless handset",
        "a smartphone charging on a cable", "an iphone", "a payphone", "a smartphone in a case", "a landline",
        "a smartphone showing a video call", "a mobile with a big screen",
    ]),
    "violin": ("object", [
        "a fiddle", "a violin and its bow", "a viola", "a violin in an open case", "a child's small violin",
        "an antique fiddle", "a violin tucked under a chin", "a stradivarius", "a violin with a broken bridge",
        "an electric violin", "a fiddle at a folk session", "a violin on a music stand",
    ]),
    "curry": ("dish", [
        "a bowl of chicken tikka masala", "a green thai curry with rice", "a lamb rogan josh", "a chickpea chana masala",
        "a japanese katsu curry", "a yellow lentil dal", "a red curry with prawns", "a vindaloo",
        "a massaman with potatoes", "a korma with naan on the side", "a bowl of butter chicken", "a fish curry in a clay pot",
    ]),
    "tacos": ("dish", [
        "three tacos al pastor", "fish tacos with lime", "a plate of carnitas tacos", "crispy beef tacos",
        "soft tortillas with grilled shrimp", "tacos with salsa verde", "a taco truck order of birria",
        "street tacos with onion and cilantro", "a hard shell taco dripping with cheese", "breakfast tacos with egg",
        "vegetarian tacos with black beans", "tortillas folded around grilled steak",
    ]),
    "cookies": ("dish", [
        "a plate of chocolate chip cookies", "oatmeal raisin cookies on a rack", "gingerbread men", "a jar of biscuits",
        "shortbread fingers", "macarons in pastel colours", "snickerdoodles", "sugar cookies with icing",
        "peanut butter cookies", "a tin of butter biscuits", "double chocolate cookies cooling on a tray", "almond biscotti",
    ]),
    "wine": ("drink", [
        "a glass of red wine", "a bottle of chardonnay", "a rose in a stemmed glass", "two glasses of merlot",
        "a decanter of cabernet", "a flute of champagne", "a glass of prosecco", "a bottle of pinot noir",
        "a carafe of house white", "a sommelier pouring a glass of riesling", "a wine glass half full of malbec",
        "a corked bottle of port",
    ]),
    "milk": ("drink", [
        "a glass of milk", "a carton of whole milk", "a bottle of oat milk", "a jug of fresh milk",
        "a child's cup of milk", "a pint of skimmed milk", "a glass of almond milk", "milk being poured into a glass",
        "a bottle of goat's milk", "a glass of chocolate milk", "a glass bottle of milk on a doorstep", "warm milk in a mug",
    ]),
    "elephant": ("animal", [
        "an african elephant", "an elephant calf", "a herd of elephants", "an asian elephant with small ears",
        "an elephant spraying water with its trunk", "a bull elephant with long tusks", "an elephant at a watering hole",
        "an old elephant", "a mother elephant and her calf", "an elephant covered in red dust", "an elephant bathing in a river",
        "an elephant walking through tall grass",
    ]),
    "sheep": ("animal", [
        "a woolly ewe", "a flock of sheep", "a newborn lamb", "a ram with curled horns", "a freshly sheared sheep",
        "a black-faced sheep", "two lambs", "a merino ram", "a sheep behind a fence", "a flock on a hillside",
        "a lamb with a bottle", "a sheep with a muddy fleece",
    ]),
    "bus": ("vehicle", [
        "a red double-decker", "a yellow school bus", "a city bus at a stop", "a long-distance coach",
        "an electric bus", "a trolleybus", "a minibus", "a tour bus", "an articulated bus", "a night bus",
        "a shuttle bus at the airport", "an old country bus",
    ]),
    "helicopter": ("vehicle", [
        "a rescue helicopter", "a news chopper", "a military helicopter", "a helicopter on a helipad",
        "an air ambulance", "a small two-seat helicopter", "a police helicopter", "a helicopter with spinning rotors",
        "a firefighting helicopter with a water bucket", "a helicopter above the sea", "a sightseeing chopper",
        "a twin-rotor helicopter",
    ]),
    "golf": ("activity", [
        "a golfer teeing off", "a putt on the eighteenth green", "a chip shot out of the bunker", "a golfer's swing on the fairway",
        "a caddie handing over a driver", "a hole in one", "a golfer lining up a putt", "players walking to the green",
        "a drive down the fairway", "a golfer escaping the rough", "a practice session at the driving range",
        "a golfer celebrating a birdie",
    ]),
    "skiing": ("activity", [
        "a skier carving down a slope", "a slalom race", "a ski jumper in the air", "beginners on the nursery slope",
        "a downhill racer in a tuck", "cross-country skiers on a groomed track", "a skier in deep powder",
        "a freestyle skier doing a flip", "skiers riding a chairlift", "a mogul run", "a ski instructor leading a class",
        "a skier stopping in a spray of snow",
    ]),
    "desert": ("place", [
        "endless sand dunes", "a cactus-dotted plain", "a dry canyon", "the sahara", "a salt flat",
        "an oasis with palm trees", "red rocks under a burning sun", "a camel caravan crossing the sand",
        "cracked dry earth", "a rocky badland", "a dune sea at dusk", "a lonely road through arid land",
    ]),
    "lake": ("place", [
        "a calm alpine lake", "a lake with a wooden jetty", "a reservoir", "a misty loch", "a frozen pond",
        "a lake reflecting the hills", "a crater lake", "a lakeside cabin", "still water at the edge of a forest",
        "a swimming lake with a raft", "a reed-lined lake", "a lake at dusk with a rowing dinghy",
    ]),
    "camera": ("object", [
        "a digital camera", "an old film camera", "a camera with a zoom lens", "a polaroid", "a camera on a tripod",
        "a mirrorless camera", "a vintage rangefinder", "a camera strap and lens caps", "a disposable camera",
        "a camcorder", "a camera with a flash", "a lens and a camera body",
    ]),
    "clock": ("object", [
        "a wall clock", "an alarm clock", "a grandfather clock", "a cuckoo clock", "a station clock",
        "a clock tower face", "a digital clock on a bedside table", "an old mantel clock", "a clock with roman numerals",
        "a kitchen clock", "a ticking pendulum clock", "a clock stopped at midnight",
    ]),
}

UNSEEN = {
    "pasta": ("dish", [
        "a plate of spaghetti with meatballs", "penne in tomato sauce", "fettuccine alfredo", "a bowl of mac and cheese",
        "a tray of lasagna", "ravioli with sage butter", "linguine with clams", "spaghetti carbonara",
        "a bowl of tortellini", "gnocchi with pesto", "orecchiette with broccoli", "rigatoni bolognese",
    ]),
    "sushi": ("dish", [
        "salmon nigiri", "a platter of maki rolls", "a california roll", "tuna sashimi", "a bento box of nigiri",
        "spicy tuna rolls", "eel nigiri", "a plate of rainbow rolls", "temaki hand rolls", "salmon roe on rice",
        "nigiri with wasabi and pickled ginger", "a wooden board of sashimi",
    ]),
    "ice cream": ("dish", [
        "two scoops of vanilla gelato in a cone", "a chocolate sundae", "a strawberry cone", "a banana split",
        "a cup of mint chocolate chip", "soft serve with sprinkles", "a scoop of pistachio gelato",
        "an ice cream sandwich", "a tub of cookie dough ice cream", "a waffle cone of rocky road",
        "a bowl of mango sorbet", "a sundae with hot fudge and a cherry",
    ]),
    "burger": ("dish", [
        "a cheeseburger with fries", "a double bacon cheeseburger", "a veggie patty on a brioche bun",
        "a hamburger with pickles", "sliders on a wooden board", "a chicken burger with lettuce",
        "a smash burger with onions", "a burger and a milkshake", "a bun with a beef patty and cheddar",
        "a mushroom swiss burger", "a kids' burger meal", "a tall burger held together with a skewer",
    ]),
    "tea": ("drink", [
        "a cup of green tea", "a pot of earl grey", "a glass of iced tea", "a mug of chamomile",
        "a cup of masala chai", "a pot of jasmine leaves steeping", "a bowl of whisked matcha", "a glass of fresh mint infusion",
        "a cup of oolong", "a bubble tea with tapioca pearls", "a cup of rooibos", "a teabag steeping in hot water",
    ]),
    "cat": ("animal", [
        "a tabby kitten", "a black cat", "a fluffy persian", "a siamese with blue eyes", "a ginger tomcat",
        "a grey kitten", "a sphynx", "a calico", "a maine coon", "a white kitten with a bell",
        "a cat curled into a ball", "a purring tortoiseshell",
    ]),
    "bicycle": ("vehicle", [
        "a mountain bike", "a red road bike", "a tandem bike", "a bmx", "a folding bike",
        "a rusty bike against a fence", "a cargo bike", "a child's bike with training wheels", "a penny-farthing",
        "a racing bike with thin tyres", "a bike with a basket", "a fixed-gear bike",
    ]),
    "tennis": ("activity", [
        "a player serving on a clay court", "a backhand return at the net", "a doubles match on grass",
        "a ball boy handing over balls", "a volley at the net", "a player lunging for a drop shot",
        "a rally on a hard court", "a girl practising forehands against a wall", "a tiebreak at Wimbledon",
        "a smash from the baseline", "an umpire on a high chair watching a rally", "a player bouncing the ball before a serve",
    ]),
    "piano": ("object", [
        "a concert grand", "an upright with sheet music on the stand", "a white baby grand", "a digital keyboard",
        "a child practising scales on the keys", "an old honky-tonk upright", "a keyboard with a missing ivory key",
        "a grand piano", "a keyboard with weighted keys and a sustain pedal", "black and white keys under a lamp",
        "a pianist's hands on the keys", "a piano bench and pedals",
    ]),
}

#: Other names of the seen categories, used as training hypotheses beside the category's own.
NAMES = {
    "soup": ["soup", "a soup", "broth", "a bowl of soup"], "salad": ["salad", "a salad", "greens"],
    "bread": ["bread", "a loaf", "baked bread"], "cake": ["cake", "a cake", "a sweet bake"],
    "pizza": ["pizza", "a pizza"], "fruit": ["fruit", "fresh fruit", "fruits"],
    "coffee": ["coffee", "a coffee", "an espresso drink"], "juice": ["juice", "a juice", "fruit juice"],
    "rice": ["rice", "a rice dish"], "eggs": ["eggs", "an egg dish", "egg"],
    "fried chicken": ["fried chicken", "chicken"], "hot chocolate": ["hot chocolate", "cocoa"],
    "dog": ["dog", "a dog", "a puppy", "a canine"], "horse": ["horse", "a horse", "a pony"],
    "bird": ["bird", "a bird", "birds"], "cow": ["cow", "cattle", "a cow"], "rabbit": ["rabbit", "a bunny", "a rabbit"],
    "car": ["car", "a car", "an automobile"], "boat": ["boat", "a boat", "a ship"],
    "airplane": ["airplane", "a plane", "an aircraft"], "motorcycle": ["motorcycle", "a motorbike"],
    "truck": ["truck", "a lorry"], "football": ["football", "soccer", "a football match"],
    "swimming": ["swimming", "a swimmer", "a swimming race"], "basketball": ["basketball", "a basketball game"],
    "running": ["running", "a race", "a runner"], "beach": ["beach", "the seaside", "the coast"],
    "mountain": ["mountain", "mountains", "a peak"], "forest": ["forest", "woods", "trees"],
    "city": ["city", "a town", "an urban scene"], "guitar": ["guitar", "a guitar"],
    "computer": ["computer", "a laptop", "a pc"], "book": ["book", "a book", "reading"],
    "phone": ["phone", "a smartphone", "a telephone"], "violin": ["violin", "a fiddle"],
    "curry": ["curry", "a curry"], "tacos": ["tacos", "a taco"], "cookies": ["cookies", "biscuits", "a cookie"],
    "wine": ["wine", "a wine"], "milk": ["milk", "dairy milk"], "elephant": ["elephant", "an elephant", "elephants"],
    "sheep": ["sheep", "a lamb", "a sheep"], "bus": ["bus", "a bus", "a coach"], "helicopter": ["helicopter", "a chopper"],
    "golf": ["golf", "a golfer"], "skiing": ["skiing", "a skier"], "desert": ["desert", "the desert", "dunes"],
    "lake": ["lake", "a lake"], "camera": ["camera", "a camera"], "clock": ["clock", "a clock"],
}
#: What each kind of category is, as a hypothesis.
KINDS = {"dish": "food", "drink": "a drink", "animal": "an animal", "vehicle": "a vehicle", "activity": "sport",
         "place": "a place", "object": "an object"}

#: Hypothesis templates of the training pairs ({} is the label); the test uses the task's
#: default, "This example is {}." (the first here).
HYPOTHESES = [
    "This example is {}.",
    "This text is about {}.",
    "The picture shows {}.",
    "It is about {}.",
    "This is a photo of {}.",
    "Topic: {}.",
]

CAPTIONS_PER_SEEN = 20  # train 17 + validation 3 per seen category
VALIDATION_PER_SEEN = 3
CAPTIONS_PER_UNSEEN = 24
CANDIDATES = 4


def captions(kind: str, items: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct captions: every item used about equally, each in a different scene."""
    templates = TEMPLATES[kind]
    assert count <= len(items) * len(templates)
    order = rng.sample(items, len(items))
    scenes = {item: rng.sample(templates, len(templates)) for item in items}  # each item's scenes, in a random order
    out = []
    for k in range(count):
        item = order[k % len(order)]
        text = scenes[item][k // len(order)].format(item)
        out.append(text[0].upper() + text[1:])
    return out


def pairs_for(caption: str, label: str, rng: random.Random) -> list[dict]:
    """One entailed and one contradicted hypothesis about a caption. A category is named by
    any of its names (and now and then by its kind: "food", "an animal"), so the model
    learns to match meanings rather than a few label words; the wrong name is another
    category of the same kind (another dish, another animal) half the time, so near
    misses are learnt, else any other category or kind."""
    kind = SEEN[label][0]
    right = KINDS[kind] if rng.random() < 0.15 else rng.choice(NAMES.get(label, [label]))
    near = [name for name, (k, _) in SEEN.items() if k == kind and name != label]
    if near and rng.random() < 0.5:
        wrong = rng.choice(NAMES.get(other := rng.choice(near), [other]))
    elif rng.random() < 0.15:
        wrong = rng.choice([name for k, name in KINDS.items() if name != KINDS[kind]])
    else:
        other = rng.choice([name for name in SEEN if name != label])
        wrong = rng.choice(NAMES.get(other, [other]))
    return [
        {"text": caption, "hypothesis": rng.choice(HYPOTHESES).format(right), "label": "entailment"},
        {"text": caption, "hypothesis": rng.choice(HYPOTHESES).format(wrong), "label": "contradiction"},
    ]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    rng = random.Random(SEED)
    assert not set(SEEN) & set(UNSEEN) and set(NAMES) == set(SEEN)
    names = sorted(SEEN)
    train, validation, test = [], [], []
    for name in names:
        kind, items = SEEN[name]
        texts = captions(kind, items, CAPTIONS_PER_SEEN, rng)
        for i, text in enumerate(texts):
            (validation if i < VALIDATION_PER_SEEN else train).extend(pairs_for(text, name, rng))
    # The bundled food / not_food captions: "food" is entailed by the food ones only.
    for split, rows in (("train", train), ("validation", validation)):
        for row in read_jsonl(FOOD_CAPTIONS / f"{split}.jsonl"):
            rows.append({
                "text": row["text"],
                "hypothesis": rng.choice(HYPOTHESES).format("food"),
                "label": "entailment" if row["label"] == "food" else "contradiction",
            })
    unseen = sorted(UNSEEN)
    for name in unseen:
        kind, items = UNSEEN[name]
        for text in captions(kind, items, CAPTIONS_PER_UNSEEN, rng):
            candidates = [name, *rng.sample([u for u in unseen if u != name], CANDIDATES - 1)]
            rng.shuffle(candidates)
            test.append({"text": text, "candidate_labels": candidates, "label": name})
    for rows in (train, validation, test):
        rng.shuffle(rows)
    for split, rows in (("train", train), ("validation", validation), ("test", test)):
        with open(HERE / f"{split}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        print(split, len(rows))


if __name__ == "__main__":
    main()
