"""Talk to streamrec with nothing but kafka-python: produce items and an event, read the
recommendation. Run it against a running deployment:

    python examples/produce_and_consume.py --bootstrap 127.0.0.1:9092
"""

import argparse
import json
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

parser = argparse.ArgumentParser()
parser.add_argument("--bootstrap", default="127.0.0.1:9092")
args = parser.parse_args()
run = uuid.uuid4().hex[:6]  # fresh ids, so the example can run more than once

producer = KafkaProducer(
    bootstrap_servers=args.bootstrap,
    key_serializer=str.encode,
    value_serializer=lambda v: json.dumps(v).encode(),
)
# 1. The catalog: the language model reads `text`.
items = {
    f"moon-{run}": "Apollo 13 (1995). Astronauts fight to return to Earth. Genres: Drama, Space.",
    f"mars-{run}": "The Martian (2015). An astronaut stranded on Mars. Genres: Sci-Fi.",
    f"cake-{run}": "Chef (2014). A cook starts a food truck. Genres: Comedy, Cooking.",
}
for item_id, text in items.items():
    producer.send("items", key=item_id, value={"item_id": item_id, "text": text})
producer.flush()
time.sleep(3)  # let the worker index them (a real catalog is produced long before events)

# 2. A user event, keyed by user id.
event = {
    "event_id": f"ev-{run}",
    "user_id": f"alice-{run}",
    "item_id": f"moon-{run}",
    "ts": time.time(),
}
producer.send("events", key=event["user_id"], value=event)
producer.flush()

# 3. Its recommendation (one per event, keyed by user id).
consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, value_deserializer=json.loads)
parts = [
    TopicPartition("recommendations", p) for p in consumer.partitions_for_topic("recommendations")
]
consumer.assign(parts)
consumer.seek_to_beginning(*parts)
deadline = time.time() + 60
while time.time() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        for record in records:
            if record.value["event_id"] == event["event_id"]:
                rec = record.value
                print(f"recommendations for {rec['user_id']} after {rec['event_id']}:")
                for scored in rec["items"][:3]:
                    print(f"  {scored['item_id']:<14} {scored['score']:.3f}")
                raise SystemExit(0)
raise SystemExit("no recommendation within 60 s")
