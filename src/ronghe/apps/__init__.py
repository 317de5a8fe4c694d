"""Applications built on the toolkit (users of it, never copies of it).

``assist/``: the customer-service assistant - intents, FAQ answers, out-of-scope detection and
hand-off, served with a chat page (``ronghe assist ...``).
"""
