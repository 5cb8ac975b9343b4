"""Messages that ask a support agent for nothing: what the customer's words are also compared
with before they count as a request.

Messages to the assistant itself ("are you a robot?", "what's your name") and other chatter can
come as close to a condition as real requests do: "I want a human" is near "are you a bot". A
unit of the message (semantic.py) votes for its closest guideline only if that guideline is
about as close as the nearest of these texts, or closer (BACKGROUND_LEAD, calibrated).

Texts as close as BACKGROUND_OVERLAP to one of the agent's own conditions are left out for that
agent: an agent whose guideline is about the weather must still hear "what's the weather like?".

Written for this purpose, generic to any support agent (greetings, small talk, questions to the
assistant, test messages, unrelated questions); none taken from the evaluation set in
bench/data/nlp (some written after reading a list of dev chatter that matched, see
bench/README.md). Changing them changes the calibration: re-run `python -m bench.nlp
--calibrate`.
"""

from __future__ import annotations

BACKGROUND: tuple[str, ...] = (
    "hi there, how are you doing today?",
    "good morning!",
    "thanks so much, have a nice day",
    "ok great, bye for now",
    "lovely, cheers",
    "no worries at all",
    "haha that's funny",
    "nice to meet you",
    "how's your day going?",
    "what's the weather like where you are?",
    "it's raining again here",
    "I love this song",
    "did you watch the game last night?",
    "happy new year!",
    "I'm just browsing",
    "who made you?",
    "are you a bot or what",
    "do you have feelings?",
    "what is your favourite colour",
    "tell me a joke",
    "write me a story about a dragon",
    "what's the capital of australia",
    "how many legs does a spider have",
    "what's 12 times 7",
    "translate hello into spanish",
    "recommend a good movie",
    "what should I cook for dinner tonight",
    "my cat is sitting on my keyboard",
    "just testing this chat",
    "test 123",
    "asdfgh",
    "???",
    "sorry, typed that by mistake",
    "never mind",
    "hold on a moment",
    "brb, someone's at the door",
    "give me a second",
    "I'm back",
    "are you still there?",
    "can you hear me",
    "what time is it",
    "I'm tired today",
    "my coffee went cold",
    "I like your website design",
    "where are you located?",
    "do you work weekends?",
    "how old are you",
    "what languages can you understand",
)
