"""The plain ``transformers.Trainer`` script row 7 compares taskhub's training with: what a
user would write by hand to fine-tune a sequence classifier on a JSONL file of
``text``/``label`` rows, with the same settings taskhub uses.

Standalone: ``python benchmarks/plain_trainer.py MODEL TRAIN.jsonl OUTPUT_DIR [EPOCHS] [BATCH_SIZE]``.
"""

from __future__ import annotations

import sys


def train(model_path: str, train_file: str, output_dir: str, epochs: float = 1, batch_size: int = 16,
          learning_rate: float = 5e-5, seed: int = 42, limit: int | None = None, use_cpu: bool = True) -> dict:
    import datasets
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    datasets.disable_progress_bars()
    data = datasets.load_dataset("json", data_files=train_file, split="train")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    labels = sorted(set(data["label"]))
    label2id = {label: i for i, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def encode(batch):
        encoded = tokenizer(batch["text"], truncation=True)
        encoded["labels"] = [label2id[label] for label in batch["label"]]
        return encoded

    data = data.map(encode, batched=True, remove_columns=data.column_names)
    set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id
    )
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="epoch",
        use_cpu=use_cpu,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)
    return trainer.train().metrics


if __name__ == "__main__":
    model, file, out, *rest = sys.argv[1:]
    print(train(model, file, out, *(float(rest[0]),) if rest else (), *(int(rest[1]),) if len(rest) > 1 else ()))
