"""Demo material: synthetic faces, triggers, a BadNet trainer, and the end-to-end demo."""
