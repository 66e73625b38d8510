"""The demo's attackers: synthetic faces, triggers, poisoned training sets and BadNets.

Kept apart from the defence (``repair``), as ART keeps attacks apart from defences: the
attacks use the defence's model and data code and call its public entry point to repair
what they build; the defence never imports them. ``python -m attacks`` builds demo BadNets
and repairs them into model folders.
"""
