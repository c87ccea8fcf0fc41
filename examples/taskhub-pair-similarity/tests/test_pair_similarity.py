"""The plugin's own tests: taskhub's contract suite, run against this task."""

from taskhub.testing import TaskContract, save_tiny_text_model

PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A dog runs in the park.", "A cat sleeps on the sofa.", 0.4),
    ("Two kids are swimming.", "Children swim in a pool.", 4.0),
    ("The market opens at nine.", "A woman slices an onion.", 0.1),
]


class TestPairSimilarityContract(TaskContract):
    task_name = "pair_similarity"
    train_rows = [{"text": a, "text_pair": b, "score": s} for a, b, s in PAIRS] * 4
    predict_rows = [{"text": "A man is singing.", "text_pair": "A man sings a song."}]

    def make_model(self, path):
        save_tiny_text_model(path)
