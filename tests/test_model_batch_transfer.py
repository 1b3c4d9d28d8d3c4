"""Batches made in dataloader workers arrive equal to in-process ones, through the fewest buffers:
images decoded straight into one batch buffer (``SampleDataset.__getitems__``), token tensors views of
one more (``collate.token_tensors``), sent once each (``Batch.__reduce__``)."""

from __future__ import annotations

import os
import pickle

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch")

from _model_fixtures import make_build_output, tiny_model_dir, tokenizer  # noqa: E402, F401

from skyeye_model.collate import Collator, PackingCollator, concat_images  # noqa: E402
from skyeye_model.data import SampleDataset  # noqa: E402
from skyeye_model.shared_batch import whole_buffer  # noqa: E402
from skyeye_model.template import ChatTemplate  # noqa: E402

FIELDS = ("input_ids", "attention_mask", "labels", "image_mask", "pixel_values", "position_ids")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tokenizer):
    root = make_build_output(tmp_path_factory.mktemp("build"))
    return SampleDataset(root, ChatTemplate(tokenizer, tokens_per_image=4, max_length=128), image_size=56, max_frames=2)


def batches(dataset, collator, workers: int) -> list:
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=list(range(len(dataset))), collate_fn=collator, num_workers=workers)
    return list(loader)


def assert_same(left, right) -> None:
    assert left.ids == right.ids and left.weights == right.weights
    for name in FIELDS:
        a, b = getattr(left, name), getattr(right, name)
        assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), name


@pytest.mark.parametrize("collator", [Collator(0), PackingCollator(0, pack_length=96)], ids=["padded", "packed"])
def test_worker_batches_equal_in_process_batches_and_share_one_token_buffer(dataset, collator):
    local, remote = batches(dataset, collator, 0), batches(dataset, collator, 2)
    assert len(local) == len(remote) == 5
    for a, b in zip(local, remote):
        assert_same(a, b)
        storage = b.input_ids.untyped_storage().data_ptr()  # sent as one buffer, rebuilt as views of it
        assert all(getattr(b, n).untyped_storage().data_ptr() == storage for n in ("attention_mask", "labels", "image_mask"))
    # the per-sample path (no __getitems__) gives the same batches
    assert_same(collator([dataset[i] for i in range(4)]), local[0])


def test_a_batch_decoded_into_one_buffer_is_passed_on_without_a_copy(dataset):
    video = next(i for i in range(len(dataset)) if dataset.row(i)["id"] == "capera-0000")  # 2 frames kept
    order = [0, video, 1]
    samples = dataset.__getitems__(order)
    batch = Collator(0)(samples)
    assert batch.pixel_values.shape == (4, 56, 56, 3)
    assert batch.pixel_values.data_ptr() == samples[0].pixel_values.data_ptr()  # the buffer itself
    for got, index in zip(samples, order):
        assert torch.equal(got.pixel_values, dataset[index].pixel_values)
    # out of order (packing reorders) or partial: no view, a copy with the right pixels
    reordered = [samples[2].pixel_values, samples[0].pixel_values]
    assert whole_buffer(reordered) is None and whole_buffer([samples[0].pixel_values]) is None
    assert torch.equal(concat_images(reordered), torch.cat(reordered))


def test_a_batch_pickles_to_equal_tensors(dataset):
    for collator in (Collator(0), PackingCollator(0, pack_length=96)):
        batch = collator([dataset[i] for i in range(4)])
        assert_same(pickle.loads(pickle.dumps(batch)), batch)


def shm_inode(tensor) -> int:
    """The shared-memory file behind a tensor received from a worker (torch keeps its descriptor)."""
    return os.fstat(tensor.untyped_storage()._share_fd_cpu_()[0]).st_ino


def test_a_worker_reuses_image_buffers_the_consumer_dropped_and_never_one_it_keeps(dataset):
    """Recycled buffers (``shared_batch.BufferPool``): 4 epochs of 5 batches from one persistent worker,
    every sixth batch kept to the end. The kept ones still hold their own pixels; the dropped ones'
    buffers came back (far fewer shared-memory files than batches)."""
    expected = batches(dataset, Collator(0), 0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, sampler=list(range(len(dataset))), collate_fn=Collator(0), num_workers=1, persistent_workers=True
    )
    kept, dropped_files, seen = [], set(), 0
    for _ in range(4):
        for index, batch in enumerate(loader):
            assert_same(batch, expected[index])
            if seen % 6 == 1:
                kept.append((index, batch))
            else:
                dropped_files.add(shm_inode(batch.pixel_values))
            seen += 1
            del batch
    assert seen == 20
    for index, batch in kept:  # nothing wrote into a buffer while the consumer held it
        assert_same(batch, expected[index])
    assert len({shm_inode(batch.pixel_values) for _, batch in kept}) == len(kept)  # each its own
    assert len(kept) == 4 and len(dropped_files) <= 6  # 16 dropped: a few buffers (of 4 or 3 images) went round


def test_the_pool_hands_out_a_buffer_again_only_when_nothing_views_it_and_it_is_not_away():
    from skyeye_model.shared_batch import BufferPool, release

    pool = BufferPool(slots=3)
    first = torch.empty(0, dtype=torch.uint8).set_(pool.take(64))
    second = pool.take(64)
    assert second.data_ptr() != first.data_ptr()  # the first is still viewed here
    del second
    assert pool.take(64).data_ptr() != first.data_ptr()  # the second came back, the first is still in use
    pointer, slot = first.data_ptr(), pool.slot_of(first)
    pool.flags[slot] = 1  # sent (``handoff``) and dropped here: away until the consumer releases it
    del first
    assert pool.take(64).data_ptr() != pointer
    release(pool.flags, slot)
    assert pool.take(64).data_ptr() == pointer
    assert pool.take(32).nbytes() == 32  # another size: a new buffer
