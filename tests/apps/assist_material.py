"""The tiny customer-service material the assistant tests share: intents, answers, FAQ,
out-of-scope texts (a uniquely named module: test files import it at run time, which a
``conftest`` name would not survive in the full suite)."""

from __future__ import annotations

import random

import pandas as pd

INTENTS = {
    "card_arrival": ["my card has not arrived yet", "when will my new card arrive",
                     "the card you sent never came", "still waiting for my bank card",
                     "how long does card delivery take", "i ordered a card weeks ago and nothing",
                     "where is my new debit card", "card not delivered to my address"],
    "lost_card": ["i lost my card", "my card was stolen", "someone stole my wallet with the card",
                  "i can't find my credit card anywhere", "please block my lost card",
                  "my card is missing, freeze it", "i dropped my card somewhere",
                  "report a stolen card"],
    "balance": ["what is my balance", "how much money do i have", "show my account balance",
                "check the balance on my account", "how much is left in my account",
                "tell me my current balance", "balance please", "what's in my account right now"],
    "transfer": ["send money to my friend", "how do i transfer money", "make a bank transfer",
                 "i want to pay someone", "transfer 50 euros to my sister",
                 "move money between accounts", "wire money abroad", "how to send a payment"],
}
ANSWERS = {"card_arrival": "Cards arrive within 5 working days. Your order is {order}.",
           "lost_card": "I have frozen your card. A new one is on its way.",
           "balance": "You can see your balance on the home screen of the app.",
           "transfer": "Open Payments, choose Transfer and follow the steps."}
FAQ = [("opening-hours", ["what are your opening hours", "when are you open",
                          "what time do branches open"], "Branches open 9:00-17:00, Mon-Fri."),
       ("fees", ["what fees do you charge", "how much does the account cost",
                 "is there a monthly fee"], "The basic account is free; see the price list."),
       ("app-download", ["where can i download the app", "how do i get the mobile app",
                         "is there an app for my phone"], "Get it from the App Store or Play.")]
OOS = ["what is the weather tomorrow", "tell me a joke", "who won the football game",
       "recommend a good pizza place", "how tall is mount everest", "play some music",
       "what is the capital of peru", "book me a flight to rome", "translate hello to french",
       "how do i bake bread", "what's a good movie tonight", "set an alarm for 7am",
       "how many calories in an apple", "who wrote hamlet", "is it going to rain",
       "find me a recipe for soup"]
FILLERS = ["", " please", " thanks", " asap", " today", " now"]


def intents_frame(seed: int = 0, reps: int = 2) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for intent, texts in INTENTS.items():
        for r in range(reps):
            for t in texts:
                rows.append({"text": t + rng.choice(FILLERS), "intent": intent})
    rng.shuffle(rows)
    return pd.DataFrame(rows)
