"""GAN-INT-CLS (Reed, Akata, Yan, Logeswaran, Schiele & Lee 2016, "Generative Adversarial Text to
Image Synthesis", arXiv:1605.05396): images from sentences.

Networks (``gankit.models.text2image``): G(z, φ(t)) and the matching-aware D(x, φ(t)), both
DCGAN nets with the text embedding φ(t) compressed by FC + LeakyReLU to ``t_dim`` = 128 and
concatenated to z (G) or replicated over D's 4x4 grid (D). φ is a char-CNN-RNN text encoder
(``gankit.recipes.text_encoder``) trained first with the structured joint embedding loss and
kept frozen here; embeddings of the training captions are precomputed (cached per caption).
``encoder=minilm`` uses the pretrained sentence encoder all-MiniLM-L6-v2 instead (384-d,
``gankit.models.minilm``, from the optional extra ``gankit[minilm]``; ``gankit.text``).

What G reads (``cond``; the last section of this docstring): ``text`` is the paper's G(z, φ(t)).
``image``, the default with gankit's own encoder (``cond=auto``; MiniLM has no image side, so
``text`` with it), trains G(z, θ(x)) on the training image's own embedding by the encoder's
image side, and at sampling a retrieval prior picks the training image whose θ G reads among
those the caption describes; the latent's last component makes that choice. D always reads the
caption. Every measurement before that section was made with G reading φ(t) (``cond=text``), the
default until 2026-12-03; "the defaults" there means those.

Objective, with s = D(·,·) as a probability and one random caption t of each image x:

- ``gan``: the conditional GAN. D: -[log D(x, t) + log(1 - D(G(z, t), t))].
- ``cls`` (GAN-CLS, Algorithm 1): D also sees real images with *wrong* text, t̂ (the caption of
  another image in the minibatch), as fake: L_D = -[log s_r + ½(log(1 - s_w) + log(1 - s_f))]
  with s_r = D(x, t), s_w = D(x, t̂), s_f = D(G(z, t), t) (``gankit.losses.d_matching_aware``).
- ``int`` (GAN-INT, eq. 5): G also learns from interpolated embeddings β·φ(t1) + (1-β)·φ(t2),
  β = 0.5, for which there are no real images: G adds -log D(G(z', t_int), t_int).
- ``int_cls`` (default): both, the paper's best model.

G minimises -log s_f (the non-saturating form, as the authors' code does) plus the INT term.
Adam β1 0.5, batch 64, z 100-d, as in the paper; lr 1e-3 for G and D (the paper: 2e-4; see the
end of this docstring).

Deviations, each for a 2-core CPU: images 32x32 by default (paper 64x64; ``--size 64`` gives
the paper's input size), ``width`` 32 for both nets (the authors' code: ngf 128, ndf 64; a
half-width D, ``width_d=16``, was measured and not kept, see below); text embedding 128-d from
gankit's own smaller char-CNN-RNN (paper 1024-d); one caption per image per step (the authors'
code averages four caption embeddings). GAN-INT takes B // 2 interpolations a step, as many as
the authors' code (B/2): image i's caption with image B-1-i's, i < B // 2. At β = ½ the pairs
(i, B-1-i) and (B-1-i, i) give the same embedding, so gankit's earlier full-batch GAN-INT pass
drew each interpolation twice.
``ema=true`` (off-paper, default; Yazıcı et al. 2019): samples come from an exponential moving
average of G's weights. ``lambda_ms=0.1`` (off-paper, default with ``cond=text``; Mao et al. 2019, MSGAN,
arXiv:1903.05628): G also minimises 1 / (E|G(z1, t) - G(z2, t)| / E|z1 - z2|), the distance
taken by default between where D's features respond (``ms_space``, below), for ``ms_pairs`` = 16 of the B
captions a step: their second latents ride in G's pass over the batch (one BatchNorm batch of
B + 16) and D's features of both come from one pass. Without it, on
``shapes`` G ignored z within 1,000 steps (8 latents per caption gave 8 identical images) — the
conditional mode collapse MSGAN addresses; ``--set lambda_ms=0`` gives the paper's objective.

Learning rate and mode-seeking weight, measured on ``shapes`` (32 px, 1,500 steps, one seed,
the word-shuffle text encoder; accuracy of generated images on held-out-template captions, and
how many of 5 positions / 2 sizes 200 samples of one open caption cover):

    lr 2e-4, lambda_ms 1     colour 0.554  shape 0.406  size 0.663  positions 4  sizes 2
    lr 5e-4, lambda_ms 1     colour 0.563  shape 0.422  size 0.695  positions 5  sizes 2
    lr 5e-4, lambda_ms 0     colour 0.701  shape 0.394  size 0.900  positions 1  sizes 1
    lr 5e-4, lambda_ms 0.1   colour 0.740  shape 0.432  size 0.858  positions 2  sizes 1
    lr 1e-3, lambda_ms 0.1   colour 0.771  shape 0.441  size 0.871  positions 4  sizes 2   (kept)
    lr 5e-4, 0.1, variant=cls colour 0.787 shape 0.408  size 0.880  positions 4  sizes 2

With weight 1 the term rewarded pixel differences so strongly that G drew speckle noise.
The text embedding is rescaled to norm sqrt(E) before D's and G's compression (see
``gankit.models.text2image.TextProjection``).

``standing_stats=32`` (off-paper, default; BigGAN's standing statistics, see
``gankit.engine.standing``): before every sample grid, evaluation and export, the engine
re-estimates the BatchNorm statistics of the sampled G over 32 batches of training captions and
fresh z. Each training step runs G in training mode three times: on the right captions, on GAN-INT's
interpolated embeddings and for the mode-seeking term. So the running statistics G samples
with are a third from interpolations that sampling never sees, and also belong to the live
weights, not the EMA's. On one 5,786-step run, re-estimating them raised held-out-caption shape
accuracy from 0.838 to 0.947, colour from 0.937 to 0.997 and size from 0.783 to 0.991. Before,
many small objects were drawn faint or not at all. Training is unchanged; ``--set standing_stats=0``
samples with the training statistics.

D's side, three off-paper defaults (each ``--set ...=false`` / ``wrong=random`` gives the paper's):

- ``wrong=hard``: the paper's wrong text is a random other caption. On ``shapes`` a random caption
  differs in colour 5 times in 6, so D rejected wrong pairs by colour and never needed shape
  (shape accuracy stayed near chance). gankit takes, for each image, the other caption in the
  minibatch nearest to its own in embedding space (cosine), skipping those above
  ``wrong_max_sim`` = 0.85 (near-duplicates that may describe the image). Median cosines of two
  images' captions (``benchmarks/text_encoder_probe.py``), 6,000-step encoder: same attributes
  0.88, one attribute different 0.62-0.68 (3,000 steps: 0.96 and 0.65-0.83). With 0.75 instead,
  10.5 GAN-minutes gave shape 0.752, colour 0.908 against 0.769 and 0.922 at 0.85.
- ``spectral_norm=true`` (Miyato et al. 2018) on D's layers, which then have no BatchNorm: with
  BatchNorm D won early (D(real) .96, D(fake) .06 by 3,500 steps) and G drew blobs.
- ``projection=true`` (Miyato & Koyama 2018): D's logit also gets <W φ(t), mean_xy h(x)>, h the
  4x4 image features, beside the paper's concatenation path, so text-image agreement is a direct
  inner product.
- ``lambda_con=1``, ``lambda_con_g=0.3``, ``tau=0.1``: an image-text contrastive (InfoNCE) term
  (XMC-GAN, Zhang et al. 2021, arXiv:2101.04702, eq. 2) on the projection's two sides,
  s_ij = cos(mean_xy h(x_i), W φ(t_j)) / τ over the minibatch
  (``gankit.losses.contrastive_match``). D minimises it on real images (weight ``lambda_con``),
  G on its own images through D (``lambda_con_g``). Every other caption of the batch is a
  negative, so each step tells D about shape, not only when the one hard wrong caption differs in
  shape. XMC-GAN uses one weight for both; G's 0.3 here measured higher over the full budget.
  Captions more cosine-similar than ``con_max_sim`` = 0.75 are not each other's negatives: with
  the 6,000-step encoder "i see a red circle against a black background" (size open) has cosine
  0.80 with "a small red circle on a black background" and 0.88 with the large one, while
  captions differing in shape or colour sit at 0.5-0.77; at 0.85 (``wrong_max_sim``) the small
  caption was a negative of the open one, and G drew 91.5 % of open-caption circles large.
- ``describes=image``: whether caption j may describe image i (then it is never i's wrong caption
  nor a contrastive negative) is judged by its cosine to the *nearest of all image i's
  captions*, not only to the one drawn this step (``caption_similarity``). A caption that leaves
  the size open sits close to both sized ones, so by the drawn caption alone the
  thresholds let captions that fit the image through as wrong, more often for one size than the
  other. ``python benchmarks/text_encoder_probe.py --pairs ENCODER`` counts it over 300 training
  minibatches (6,000-step encoder): with the drawn caption, 17.4 % of small and 9.9 % of large
  images got a wrong caption that in fact fits them (threshold 0.85), and 25.3 % of fitting
  pairs stayed contrastive negatives (0.75); with all the image's captions, 5.0 % / 3.8 % and
  3.2 %, at the cost of keeping 6.3 % of true negatives out (2.9 % before). 3,000 steps, one seed:
  shape 0.920 against 0.893, size balance of open captions 0.465 against 0.435.
  ``describes=caption`` gives the previous rule.
- ``ms_space=layout`` (since 2026-12-02; ``features`` before): the mode-seeking distance is
  taken between the *layouts* of D's 4x4 image features of the two images
  (``gankit.losses.feature_layout``: each cell's feature norm over the image's mean), where D sees
  something rather than what. First the distance was in pixels (MSGAN's): with the contrastive
  term, D's features read the caption so well that G drew one image per caption (200 samples of
  one open caption spread over 4-5 positions without the term and over 2 with it), while the
  pixel term was met by speckle and background noise. Then in D's features
  (``ms_space=features``), where only what D tells apart counts as different: the spread came
  back, but two images also differ in D's features when G draws another *shape* for the same
  caption, and the term paid G for it (see the end of this docstring). The layout changes when
  the object moves or changes size and hardly when it is redrawn in place as another shape. It
  has a bias: dividing by the image's own mean makes a small object's few cells tall peaks, so
  two small objects in different places lie 1.75x as far apart as two large ones.
  ``ms_space=occupancy`` (``feature_occupancy``: each cell's norm over the mean of every cell of
  every image in the term) removes it (1.06-1.09x); measured and not the default (end of this
  docstring).

Captions that leave the size open are drawn at sizes *between* the data's two
(``benchmarks/text2image_sizes.py``): at 3,000 steps with the defaults, 24-34 % of open-caption
objects have an area in the middle third between the real small and large medians, where no real
object lies, and per shape the attribute classifier splits them unevenly (squares 89 % small,
circles 24 %). The same holds without GAN-INT (``variant=cls``), without G's contrastive term,
under either ``describes`` rule and with D learning twice as fast (``lr_d=1e-3``), so none of
them is the cause. The likeliest reading: G reads size from the caption embedding as a
continuous quantity, an open caption lies between the sized ones, and D does not reject the
in-between sizes strongly enough for G to use z to choose one. The first part is measured
(``text2image_sizes.py RUN --interpolate``): between the small and large captions' embeddings
G grows the object gradually, not in a jump.
Two more probes on that run and two remedies, none of which removes the in-between sizes
(3,000 steps, one seed; medium share for circles / squares / triangles, defaults 34/24/32 %):

- D does not single them out. D's logit (last checkpoint) for open-caption circles it scored by
  area: -0.44 small-ish, -0.86 medium, -0.76 large-ish, real +0.26 / +0.30 (squares -0.29 / -0.77
  / -0.95, triangles -0.18 / -0.39 / -0.39): medium fakes score below small ones but not below
  large ones, and every fake far below real.
- Not the EMA: the live G of the same run (standing statistics re-estimated) gives 29/21/25 %.
- StackGAN++'s unconditional logit beside the conditional one (Zhang et al. 2017,
  arXiv:1710.10916; weight 1 on D's and G's caption-free real/fake terms, trial code not kept):
  30/31/24 %, size balance 0.554, but shape 0.863 against 0.920.
- A discrete latent component (G also gets one_hot(argmax z[:10]), a mixture-of-Gaussians
  latent in the spirit of DeLiGAN, Gurumurthy et al. 2017; trial code not kept): 34/30/35 %,
  balance 0.572, shape 0.910.

Measured on the 6,000-step encoder, 3,000 steps, one seed (``gankit train text2image --data
shapes --steps 3000 --eval-every 1000 --set ...``; spread: positions of 5 and sizes of 2 covered
by 40 samples of each of 54 open captions, ``gankit eval``'s per-caption measure computed by a
script with another sampling seed):

    no contrastive term (lambda_con=0, lambda_con_g=0)      shape 0.698  colour 0.936  spread 3.89 / 1.89
    D only, con_max_sim 0.75                                 shape 0.905  colour 0.954  spread 1.65 / 1.59
    D and G (0.3), con_max_sim 0.75, pixel mode-seeking      shape 0.907  colour 0.983  spread 1.48 / 1.39
    same, pixel term on 4x-pooled images, lambda_ms 0.3      shape 0.929  colour 0.981  spread 1.59 / 1.46
    D only, on separate linear heads (not the logit's W)     shape 0.769  colour 0.949  spread 3.98 / 1.59
    D only, ms_space=features                                shape 0.820  colour 0.931  spread 4.70 / 1.83
    D and G (0.3), ms_space=features (the defaults then)     shape 0.881  colour 0.966  spread 4.72 / 1.81

(the 4x-pooled pixel term and the separate heads were trial code, not kept). Every figure in
this docstring before ``standing_stats`` existed was taken with the training BatchNorm statistics,
which understate what G draws (the defaults' row: 0.91 shape at 3,000 steps with standing
statistics). ``lambda_ms`` at 3,000 steps with them: 0.1 shape 0.910, size 0.965, spread
4.82 / 1.93; 0.3: 0.862, 0.941, 4.94 / 1.93; 1: 0.773, 0.844, 4.87 / 1.96. Earlier, at
1,500 steps with ``con_max_sim`` 0.85: without the term shape 0.568, D and G at weight 1 0.912,
D only 0.817, D 1 and G 0.3 0.893. ``--set lambda_con=0 --set lambda_con_g=0`` turns the term
off, ``--set ms_space=pixels`` gives MSGAN's distance.

Measured like the table above (1,500 steps, eval every 500; lr 1e-3 unless noted):

    paper's D (BatchNorm, random wrong)         colour 0.771  shape 0.441  size 0.871  all 0.251
    + spectral_norm                             colour 0.941  shape 0.416  size 0.847  all 0.289
    + spectral_norm, wrong=hard                 colour 0.934  shape 0.455  size 0.885  all 0.339
    + spectral_norm, hard, projection           colour 0.914  shape 0.550  size 0.868  all 0.400
    same, lr 5e-4 (default until 12-02)         colour 0.913  shape 0.575  size 0.868  all 0.437
    same, lr 5e-4, width 48 (1.8x the time)     colour 0.925  shape 0.614  size 0.882  all 0.455
    same, lr 1e-3, variant=cls                  colour 0.958  shape 0.569  size 0.941  all 0.444
    R1 (γ 1) instead of spectral norm           colour 0.861  shape 0.443  size 0.884  all 0.299
    lr_d 2e-4 (TTUR) with the paper's D         colour 0.717  shape 0.435  size 0.803  all 0.202
    spectral_norm, lambda_ms 0                  colour 0.843  shape 0.363  size 0.862  (1 position)

``width_d`` (ndf; default none, D as wide as G). 16, the 2:1 of the authors' code (ngf 128,
ndf 64), was measured and not kept. D runs on three image-caption pairs a step and G's losses
pass through it once more, so it costs more than G: ``python benchmarks/throughput.py
--text2image --width 32 --width-d 16 --steps 10`` times the whole step 1.49x faster (325.5
against 218.2 img/s, alternating blocks). Per step it learns a little less. At fixed step counts
in the ratio of the two speeds (``gankit train text2image --data shapes --steps N --seed S --set
width_d=W``, one 4,000-step text encoder per seed) the seeds split:

    D width, steps            seed 0: colour  shape  all       seed 1: colour  shape  all
    32, 1,500                         0.954  0.761  0.661             0.983  0.730  0.631
    16, 1,500                         0.966  0.747  0.658             0.978  0.689  0.572
    16, 2,150 (same time)             0.971  0.799  0.719             0.984  0.711  0.621

In the 15-minute check (``benchmarks/text2image_shapes.py [--seed 1]``), each pair run one after
the other on one slow machine, 16 made 1.35-1.42x the GAN steps, but shape accuracy was 0.846
against 0.829 (seed 0) and 0.746 against 0.802 (seed 1): mean 0.796 against 0.816. More steps
of a narrower D did not buy shape, the attribute the check is short of, so D stays as wide as G.

``ema_decay`` is not what short runs lack. One default run (seed 0) carried three more weight
averages beside the engine's, each with the engine's warm-up min(decay, (1 + step) / (10 + step))
(trial code, not kept), all scored like ``gankit eval``:

    step    decay 0.99   0.995   0.998   0.999 (default)   live G
    1,000   shape 0.708  0.706   0.706   0.706             0.722
    2,000   shape 0.833  0.824   0.823   0.823             0.789

Early on the warm-up, not the decay, sets the average's length (at step 1,000 it is 0.991), and
by 2,000 steps the decays differ by a point of shape.

The step's cost (2026-12-02). GAN-INT on B // 2 interpolations instead of B, and the
mode-seeking term's second latents for 16 captions (``ms_pairs``) riding in G's pass over the
batch instead of a second G and D pass over all B: ``python benchmarks/throughput.py
--text2image --width 32 --against 5a79c5a --steps 20 --blocks 6`` times the step 1.39x faster
(278.3 against 200.6 img/s, alternating blocks; 1.42x in a first run). In the 15-minute check
(``benchmarks/text2image_shapes.py [--seed 1]``, one machine, one run after the other):

    step                                   seed  GAN steps  colour  shape  position  all
    before (5a79c5a)                        0      1,843    99.0%   83.0%   78.4%   75.3%
    before (5a79c5a)                        1      2,076    98.5%   88.1%   67.8%   79.1%
    this one                                0      2,957    98.3%   86.0%   85.1%   78.8%
    this one                                1      2,741    97.7%   86.9%   76.4%   79.6%
    lambda_ms 0.05 (not kept)               0      2,651    98.2%   86.3%   92.8%   81.8%
    + shuffled caption copies (trial)       0      2,391    98.2%   81.3%   79.8%   75.4%
    ms_space=layout                         0      2,589    97.9%   88.6%   93.3%   84.0%
    ms_space=layout                         1      2,460    97.8%   88.2%   89.4%   85.4%
    + lr 1e-3 (the defaults since)          0      2,628    98.6%   93.5%   96.6%   90.8%
    + lr 1e-3                               1      2,924    98.4%   94.3%   90.4%   91.2%

Half the mode-seeking weight kept shape where it was and lost size balance (0.39 against 0.56,
open captions). The shuffled-copies row also trained G and D on one word-shuffled copy of each caption
with invented words (as the text encoder does); its preparation took 0.6 minutes longer and
the machine ran slower then (4.1 against 4.8 GAN steps/s).

Where the shape errors are (these runs, ``gankit eval``'s 1,080 held-out captions): circles and
squares taken for each other, triangles 95-97 % right. In the held-out template that states a
position, circles come out as circles 42-56 % of the time, against 78-91 % in the others. Not
the text encoder: of the ten training captions nearest (cosine) to each of that template's
captions, 99.3 % state its shape (98 % for circles; the seed-0 encoder). Not the unseen wording
either: G's circles for the *training* templates that state a position are 54-68 % right too
(seed 0), 81-95 % for the rest. And G does draw circles left, right and at the top when it picks
the position itself (open captions: 68-92 % right by drawn position). What it lacks at
2,400-3,000 steps is a circle at a position it is told.

Why D teaches circle against square so little (2026-12-02, the seed-0 check's encoder,
``python benchmarks/text_encoder_probe.py --shape-pairs ENCODER``: each of the 540 attribute
combinations, by its five training captions, against every caption of the two combinations that
differ from it only in shape, similarity by the ``describes=image`` rule): a circle image and a
square caption have median similarity 0.79 when the caption states no position and 0.82 when it
does, so 69 % and 83 % of those pairs
are above ``con_max_sim`` = 0.75 and never contrastive negatives, and 5 % and 30 % above
``wrong_max_sim`` = 0.85 and never wrong captions (square images and circle captions: 62 / 81 %
and 3 / 26 %). Circles and triangles sit far apart (median 0.43-0.57; under 1 % above 0.75). The
encoder ranks captions right but puts square captions near both other shapes, and a stated
position adds shared words. With ``ms_space=layout`` (the check's two runs above), circles in the
position template come out as circles 53 % and 60 % of the time (87-88 % in the others), squares
77-84 % and 86-89 %, triangles 96-100 % and 95-99 %. Raising ``con_max_sim`` to 0.85, so that
most circle-square pairs become negatives, was measured and not kept: at 1,500 steps shape 0.822
against 0.812, stated position 0.971 against 0.942, spread 4.37 / 1.89 against 4.02 / 1.81, size
balance 0.40 both; in the 15-minute check (seed 0) shape 86.2 % at 2,262 GAN steps against
88.6 % at 2,589 (run after the layout pair, on a machine that had slowed further; seed 1 not
run). Nor does judging fit by the text encoder's joint *image* encoder help (2026-12-02, trial
code not kept): caption j may describe image i only if also θ(v_i)ᵀφ(t_j) >= min_k θ(v_i)ᵀφ(t_ik)
- 2, the compatibility the encoder was trained on with margin 1. Over 200 training minibatches
(the seed-0 check's encoder, scratch probe) that rule with the 0.75 cosine kept 7.7 % of the
circle-square pairs that differ only in shape out of the contrastive negatives, against 39.2 % for
the cosine alone; it kept 0.2 % of all non-fitting pairs out (7.6 %) and made 1.7 % of fitting
pairs negatives (0.2 %). At 1,500 steps shape was 0.776 with the rule on the wrong caption and the
negatives (the hard wrong caption then differed in shape 8 % of the time, not 18 %) and 0.803 on
the negatives only, against 0.812; circles at a stated position 0.32 / 0.31 against 0.31. So
D is not short of circle-square negatives. What G draws instead (the seed-0 check, held-out
position template, by position): large circles on the left and right are right 12 % and 0 % of
the time, at the centre and bottom 60-100 %. ``gankit txt2img`` shows why: G draws a large circle
on the left as a square flush with the image's edge, rounded only on its inner side, where real
circles keep a pixel or two from the border.

The mode-seeking term costs shape everywhere else. 1,500 steps on the seed-0 check's encoder
(``gankit train text2image --data shapes --steps 1500 --set ms_space=features [--set
lambda_ms=0]``, then ``gankit eval``; the first row repeated on 2026-12-02 gave the same figures):

    lambda_ms, distance                    shape  position  all    spread (positions / sizes)  size balance
    0.1, features (default until 12-02)    0.733  0.788     0.623  4.87 / 1.98                 0.64
    0                                      0.906  1.000     0.892  1.20 / 1.17                 0.08
    0.1 from step 750 (trial)              0.756  0.813     0.668  4.89 / 1.98                 0.61
    0.1, pixels pooled 4x (trial)          0.855  0.995     0.755  2.09 / 1.61                 0.26
    0.1, layout (the default)              0.812  0.942     0.765  4.02 / 1.81                 0.40
    0.1, foreground moments (trial)        0.792  0.990     0.730  1.93 / 1.46                 0.24
    0.1, features less their mean (trial)  0.780  0.841     0.689  4.70 / 1.98                 0.62

Without the term, in the templates that leave the position open, circles are drawn 91-98 % right
and squares 73-100 % (0.1: 63-92 % and 67-78 %), but G ignores z (one caption's 200 samples:
88 % left, 99.5 % large); circles at a stated position stay low either way (51-68 % against
38-54 %). Turned on at step 750, the term takes shape back down to the always-on level within 750
steps. Taken between the two images average-pooled to 8x8 (``ms_space=pixels`` with the pooling;
trial code not kept), it costs less shape but keeps less spread: one open caption's 200 samples
all centred. So the next fix was a diversity term that moves position and size without distorting
shape, not more steps or a smaller weight (0.05 above). Three were tried (trial code not kept
except ``layout``): the layout of D's features (``feature_layout``); the centroid and spread of
the pixels' distance from the border's median colour, which on real shapes separate every
position and both sizes while a circle and a square of one size differ by 3 % in spread; and D's
features less their spatial mean (the part the projection and contrastive terms read removed).
All three cost less shape than the features; the layout kept most of the spread and raised
stated position too. The moments kept the least: at weight 0.1 the term stayed far from met (6.0
at step 1,500 against the layout's 3.3), and the open captions' samples covered 1.93 positions on average.

The learning rate, measured again with today's D and terms (2026-12-02; lr 5e-4 had been chosen
when D still had BatchNorm and no projection, table above). 1,500 steps on the seed-0 check's
encoder (``gankit train text2image --data shapes --steps 1500 --set lr=G --set lr_d=D``, then
``gankit eval``; the last column is circles in held-out captions that state a position, my
breakdown of the same images):

    G lr, D lr             colour  shape  position  all    spread (pos. / sizes)  balance  circles, position stated
    5e-4, 5e-4 (before)    0.980   0.812  0.942     0.765  4.02 / 1.81            0.40     0.31
    5e-4, 1e-3             0.981   0.827  0.938     0.768  4.11 / 1.74            0.35     0.48
    1e-3, 5e-4             0.973   0.875  0.962     0.832  4.02 / 1.72            0.40     0.42
    2e-3, 5e-4             0.976   0.850  0.928     0.807  4.44 / 1.78            0.39     0.40
    1e-3, 1e-3 (default)   0.981   0.881  0.947     0.835  4.48 / 1.61            0.31     0.58

G learning faster is what pays; D's rate matters less. 1e-3 for both was kept over G 1e-3 / D
5e-4 (the same shape) for circles at a stated position, the error that remained, and because one
rate for both is the paper's form. In the 15-minute check (``benchmarks/text2image_shapes.py
[--seed 1]``, one after the other): 2,628 and 2,924 GAN steps, colour 98.6 % and 98.4 %, shape
93.5 % and 94.3 %, stated position 96.6 % and 90.4 %, all stated 90.8 % and 91.2 % (lr 5e-4:
88.6 % and 88.2 % shape). Open captions' samples cover 4.67 and 4.76 positions of 5 and 1.44 and
1.50 sizes of 2, but split unevenly between the sizes (balance 0.16 and 0.12 against 0.33 and
0.21): 82-99 % of each shape is drawn small. G 1e-3 with D 5e-4 (the 1,500-step balance 0.40),
seed 0, right after: 2,995 GAN steps, shape 91.4 %, balance 0.19, so it does not buy the size
balance back either. Nor is G's contrastive term what pulls open captions to one size (an open
caption's embedding lies nearer the small caption's: mean cosine 0.93 against 0.91 for circles,
0.92 against 0.86 for squares; scratch probe on the seed-0 encoder): at 1,500 steps
``lambda_con_g=0`` gave balance 0.29 against 0.31 (drawn small: circles 54 %, squares 92 %,
triangles 97 %, against 57 / 90 / 99 %) and shape 0.819 against 0.881 (2026-12-03; the
reference rerun that day gave the same figures as on 12-02). A stronger mode-seeking term buys
balance with shape: ``lambda_ms=0.2`` balance 0.40, shape 0.833; a second latent for every
caption (``ms_pairs=64``, 0.80x the img/s) balance 0.28, shape 0.853. Neither is kept.

Is the lean the held-out wording? No: G draws the *training* template that leaves size open
("this image shows a {colour} {shape} on a {background} backdrop") just as one-sided, balance
0.26 against 0.28 for the held-out one (the 1,500-step reference run, 40 samples for each of the
54 captions, scratch probe; small: circles 58 / 57 %, squares 93 / 91 %, triangles 100 / 99 %).
So it is the GAN, not the text encoder's reading of unseen words. Is it the mode-seeking
distance? ``python benchmarks/text2image_sizes.py --distances RUN`` (real images that differ
only in position, through the run's trained D) gives, for small and for large objects moved,
0.814 and 0.466 in the layout (1.75x: the term pays more for spreading small objects), 0.619 and
0.569 in ``ms_space=occupancy`` (1.09x), 0.124 and 0.165 in D's features, 0.111 and 0.213 in
pixels. Occupancy at 1,500 steps (2026-12-03, same encoder): balance 0.47 against 0.31, sizes
covered 1.94 against 1.61, shape 0.869 against 0.881, stated position 0.995 against 0.947; with
``lambda_ms=0.2`` 0.43 and 0.858. But the lean grows with training whatever the distance. In the
15-minute check on a fast machine that day (``benchmarks/text2image_shapes.py [--seed 1]``, about
6,000 GAN steps, one run after the other):

    ms_space    seed  GAN steps  colour  shape  all    positions / sizes  balance  drawn small (c / s / t)
    layout       0      5,803    99.4%   96.9%  96.0%  4.78 / 1.31        0.06     94 / 97 / 100 %
    occupancy    0      6,064    99.1%   96.2%  95.2%  4.83 / 1.30        0.04     96 / 98 / 100 %
    occupancy    1      5,972    99.5%   95.9%  94.3%  4.13 / 1.46        0.11     94 / 95 / 95 %

and occupancy's ablation run (``--ablation --minutes 8``, 2,857 GAN steps) 0.29. Balance falls
from about 0.3-0.5 at 1,500 steps to 0.04-0.11 at 6,000 under either distance, so the layout's
bias is not what drives it, and the layout stays the default (it kept the same shape). Nor is
G's contrastive term: ``gankit train text2image --data shapes --steps 6000 --set lambda_con_g=0``
(the seed-0 encoder) gave balance 0.05 (small: circles 95 %, squares 97 %, triangles 100 %),
shape 0.956, spread 4.91 / 1.26. One default run watched over training (``--steps 6000
--eval-every 1000``, the seed-0 encoder; step: shape, balance, sizes / positions covered): 1,000:
0.819, 0.38, 1.82 / 4.41; 2,000: 0.909, 0.24, 1.57 / 4.61; 3,000: 0.949, 0.15, 1.56 / 4.80;
4,000: 0.967, 0.11, 1.52 / 4.87; 5,000: 0.967, 0.09, 1.41 / 4.98; 6,000: 0.972, 0.05, 1.28 /
4.98. The lean grows steadily from the first evaluation, in step with shape and position, not
as a late collapse.

Not D either (2026-12-03, ``python benchmarks/text2image_sizes.py --logits RUN``, that run): D
scores real *large* objects higher under the open caption, logit +1.47 against +0.47 for small
ones at 6,000 steps (+0.78 against +0.26 at 1,500; the training open template the same), so D
points G toward large. G does not follow: its size grows with the embedding, the open caption's
embedding lies nearer the small caption's, and the sizes between score lower than either (above),
so samples that start small stay small. What the mode-seeking term pays for (``--distances``, the
expected distance between two real images of one caption): with the layout, images of small
objects only lie 1.11x as far apart as images drawn from both sizes, so the term rewards dropping
the large ones; with occupancy 0.86-0.89x, so it rewards keeping both. But occupancy alone did
not keep them (above): without a way for the latent to choose the size, the term cannot act.

``ca=true`` gives G that way: StackGAN's conditioning augmentation (Zhang et al. 2017,
arXiv:1612.03242, Sec. 3.1; ``gankit.models.text2image.ConditioningAugmentation``). G reads
ĉ = μ(φ) + σ(φ) ⊙ ε, ε ~ N(0, I) of ``t_dim`` components, instead of the FC + LeakyReLU
compression, and adds ``kl_weight`` · KL(N(μ, σ²) ‖ N(0, I)) per component (StackGAN's λ = 1).
ε is part of the latent (``latent_dim`` = z_dim + t_dim), so sampling, interpolation and the
mode-seeking term's second latent draw it too. StackGAN introduced it because one sentence fits
many images; here the noise lets G draw an open caption at either size. Measured on the seed-0
encoder (``gankit train text2image --data shapes --steps 6000 --eval-every ... --set ca=true``;
step: shape, balance, sizes covered):

    defaults                        3,000: 0.949, 0.15, 1.56    6,000: 0.972, 0.05, 1.28
    ca=true                         2,000: 0.825, 0.46, 1.91    4,000: 0.908, 0.29, 1.85    6,000: 0.944, 0.27, 1.83
    ca=true, ms_space=occupancy     3,000: 0.902, 0.43, 1.96    4,500: 0.927, 0.35, 1.94    6,000: 0.934, 0.33, 1.94
    same, kl_weight=0.25            1,500: 0.850, 0.45, 1.87    3,000: 0.923, 0.30, 1.72
    ca, occupancy, lambda_ms=0.2    1,500: 0.754, 0.56, 1.96    3,000: 0.863, 0.38, 1.94

and in the 15-minute check (``benchmarks/text2image_shapes.py [--seed 1] --set ca=true --set
ms_space=occupancy``, on a machine slower than that morning's): seed 0, 4,401 GAN steps, colour
97.7 %, shape 91.4 %, all stated 88.2 %, balance 0.36 (drawn small: circles 73 %, squares 84 %,
triangles 89 %), the designated caption 72.5 % small; seed 1, 4,161 steps, 97.6 %, 91.6 %,
87.5 %, balance 0.23 (78 / 92 / 96 %), 86.5 % small. Better than 0.04-0.11 without it (the
check's table above), still far from half and half. The noise costs shape: 3-4 points at 6,000
steps, 5 at 3,000 (a quarter of the KL weight, so less noise: 2.6 points and balance 0.30), and
on the slower machines of 2026-12-02 (2,600-2,900 GAN steps in the check) shape would fall to
about the 90 % the check requires. The cost is in what G learned, not in the noise at sampling:
scaling ε at sampling time on the seed-0 check's run (scratch probe, ``gankit eval``'s captions
and seed) gives shape 0.914 / 0.928 / 0.927 / 0.927 and balance 0.36 / 0.27 / 0.22 / 0.17 at
ε x 1 / 0.75 / 0.5 / 0, so no truncation buys the defaults' shape back. So ``ca`` stays off by
default: it is the setting for captions that leave attributes open, not for the check.

What D says of G's *own* samples (``--logits`` also splits the run's samples by the size the
attribute classifier calls, 30 per colour, shape and background; held-out open caption, drawn
small / drawn large): with the defaults at 6,000 steps the 3 % that G draws large score -0.30
against +0.13 for its small ones (its large ones under the large caption: +0.47), so there D does
push G's few large open-caption objects back; with ``ca=true ms_space=occupancy`` at 6,000 steps
it scores them above the small ones (+0.39 / +0.22), and G still draws 84 % small. D's gradient
alone does not move a sample from one size to the other.

``lambda_imle`` (off by default) adds a term that asks for the large ones directly: conditional
IMLE (implicit maximum likelihood estimation; Li, Zhang & Malik 2019, arXiv:1811.12373, after Li
& Malik 2018, arXiv:1809.09087). For ``imle_n`` = 16 real images of the step, G draws ``imle_m``
= 8 samples under each image's caption without gradients (``nearest_latents``); the nearest in
pixels is drawn again in the step's G pass and pulled to the image, ``lambda_imle`` · mean
(G(z*, t) - x)². Every real image must have a sample near it, so a large object under a caption
that leaves the size open is a target that small samples cannot meet, whatever D says of the
sizes between. Deviations: pixel distance rather than the paper's deep features (flat-coloured
objects on flat backgrounds), and added to the GAN loss rather than replacing it. The step runs at
0.92x the defaults' img/s, 0.88x with ``ca=true ms_space=occupancy`` too (``python
benchmarks/throughput.py --text2image --width 32 --with lambda_imle=10 --steps 20``, and ``--with
ca=true,ms_space=occupancy,lambda_imle=10``; 2026-12-03). Seed-0 encoder, ``--steps 3000`` or
``6000 --eval-every 1500`` (step: shape, balance, sizes covered; the last row ``--seed 1`` on the
seed-1 encoder of the check below):

    lambda_imle=1                               1,500: 0.862, 0.33, 1.67   3,000: 0.938, 0.11, 1.41
    lambda_imle=10                              1,500: 0.832, 0.51, 1.91   3,000: 0.911, 0.29, 1.78
    ca=true, ms_space=occupancy, lambda_imle=10 1,500: 0.777, 0.57, 2.00   3,000: 0.883, 0.51, 1.98
                                                4,500: 0.912, 0.61, 2.00   6,000: 0.936, 0.56, 2.00
    same, seed 1                                1,500: 0.798, 0.44, 1.72   3,000: 0.892, 0.30, 1.72
                                                4,500: 0.930, 0.29, 1.80   6,000: 0.948, 0.29, 1.80

Alone, the pull is one more point on ``ca``'s line (shape for balance, balance falling with
steps). With the conditioning noise, on seed 0, it was the first setting whose balance held as
training went on: at 6,000 steps shape 0.936 and balance 0.56 against ``ca=true
ms_space=occupancy``'s 0.934 and 0.33 (drawn small: circles 59 %, squares 71 %, triangles 83 %;
the designated caption 56 %), and positions 4.89 of 5. Seed 1 did not repeat it: balance fell
from 0.44 to 0.29, as with ``ca`` alone, at better shape (0.948). Shape at equal steps is 2-4
points below the defaults', and the step is slower: the 15-minute check (``benchmarks/text2image_shapes.py --set ca=true --set
ms_space=occupancy --set lambda_imle=10``, seed 0, 2026-12-03 11:55-12:10) trained 3,193 GAN steps
(309 img/s over its 11.0 GAN minutes) to colour 97.2 %, shape 87.3 %, all stated 83.2 %, balance
0.53 (drawn small: circles 62 %, squares 72 %, triangles 86 %), the designated caption 66 % small,
positions 4.87 of 5; seed 1 (12:12-12:29), 3,429 steps, 98.1 %, 91.2 %, 88.0 %, balance 0.31
(75 / 83 / 96 %), 77 % small, no better than ``ca`` alone. The steps the check affords are too few
for the balance to settle, and seed 0's shape is below the check's 90 %: the setting for open
captions when there is time to train, not the default.

Every size balance above is the attribute classifier's, and it overstates (2026-12-03, 14:30 UTC).
The classifier must call every sample small or large; G's open-caption objects are often neither
(an object between the two sizes, or two faint copies of a small one), and it calls enough of
those large to look like balance. ``gankit eval`` now also reads the split from the pixels
(``size_balance_area``: the object's area against the midpoint of the data's small and large
medians for its shape; ``medium_share_area``: the share in the middle third between them, where
no real object lies). At 3,000 steps (``gankit train text2image --data shapes --steps 3000
--eval-every 1500 [--seed 1] --set ...``, then ``gankit eval RUN``; a fresh encoder per seed):

    setting (seed)                              shape  classifier balance  area balance  large by area (c / s / t)  between
    defaults (1)                                0.935  0.453               0.172          4 /  9 / 13 %            22 %
    ca=true ms_space=occupancy (0)              0.906  0.502               0.258         14 / 10 / 14 %            21 %
    same, lambda_imle=10 (0)                    0.912  0.537               0.352         24 / 14 / 15 %            22 %
    BicycleGAN's cVAE-GAN, λ 10 (1; trial)      0.910  0.509               0.151          4 /  5 / 13 %            18 %

So what the options buy is real but small: with ``ca`` and IMLE a sixth to a quarter of the
open-caption objects are large, not half. The last row is a trial (code not kept): an encoder
E(x, φ(t)) gives the latent of 16 real images a step, G reconstructs them from it (L1, weight 10)
and KL(q(z | x, t) ‖ N(0, I)) (weight 0.01) keeps the latents near the prior (BicycleGAN, Zhu et
al. 2017, arXiv:1711.11586, its cVAE-GAN half). G reconstructed the images (L1 0.045) but drew
large objects only where the encoder put large images, and prior samples seldom land there:
``G(μ(x), t)`` for real large open-caption images was above the midpoint 38 % of the time, prior
samples 9 %. With its unbounded log σ² the run first diverged at step 2,098 (an infinite latent).

One trial did move the split (trial code not kept; the same runs and measure): the condition G
reads in training is the *real image's* embedding by the text encoder's joint image side V
(θ(x), precomputed for every training image), D still judges the image against the caption, and a
mixture density network p(θ | φ(t)) (8 diagonal Gaussians on the rescaled embedding, an MLP from
φ(t), trained by maximum likelihood beside the GAN on (caption, image) pairs) gives G its
condition at sampling, its component and noise drawn from extra latent components. A caption that
leaves the size open is, to a likelihood-trained prior, a mixture of small and large images, so
the choice is made before G, not by a G that cannot jump between sizes (the unCLIP prior, Ramesh
et al. 2022, arXiv:2204.06125, in small):

    seed, components                 shape  colour  stated position  all    area balance  large (c / s / t)  between
    0, 8                             0.894  0.939   0.764            0.764  0.486         34 / 43 / 11 %     12 %
    1, 8                             0.870  0.976   0.716            0.750  0.473         22 / 34 / 22 %     13 %
    0, 32                            0.887  0.933   0.716            0.744  0.508         32 / 42 / 28 %     14 %

The prior's samples are Gaussian draws between the training images' embeddings, and for a caption
that states the position or colour they are sometimes another image's; 32 components did not
help. So the prior that was kept draws real embeddings.

**``cond=image``: G reads a retrieved image's embedding (the default since 2026-12-03).**
Training: G(z, θ(x)) with θ(x) the real image's embedding by the encoder's image side
(``gankit.text.embed_images``, once per training image; the batch carries it as ``theta``); D is
unchanged and judges the image against one of the image's captions (matching-aware, hard wrong
captions, contrastive term), GAN-INT mixes two images' θ for G and their captions' φ for D, and
IMLE and conditioning augmentation, when set, act on θ. Sampling: the retrieval prior
(``gankit.models.text2image.RetrievalPrior``) picks training image i with probability
softmax_i(s_i / τ), s_i the cosine of φ(t) to the nearest of image i's captions (the
``describes=image`` rule), τ = ``prior_tau`` = 0.01, by the inverse CDF at Φ(u), u the latent's
last component; G then reads θ(x_i), an input it was trained on. Nothing is learned for the
prior: the export carries its table (``P.safetensors``: θ 9,720 x 128 in float32 and the caption
embeddings 9,720 x 5 x 128 in float16 on ``shapes``, 17.5 MB beside G's 2.6 MB; checkpoints carry
it too).
``txt2img --interpolate`` moves φ(t) from one caption to the other and the prior picks an image
at each step with the same u, so the path runs through training images between the two captions
(from "a small red circle on the left on a black background" to "a large blue square near the
top on a white background": red circles, purple circles, a blue circle on black, blue squares on
white). Mixing the two picked θ instead, as GAN-INT's training pairs do at β = ½, gave coloured
noise at every step between the ends on the seed-0 check's export. This is
unCLIP's split (a prior chooses what the image shows, the decoder draws it) with a
nearest-neighbour prior over the training set in place of a learned one; kNN-Diffusion (Sheynin et
al. 2022, arXiv:2204.02849) and RDM (Blattmann et al. 2022, arXiv:2204.11824) also condition a
generator on retrieved training images' embeddings.

Why it works where the remedies above did not: the size a caption leaves open is chosen before G,
by the data. "i see a red circle against a black background" is as near to the small red circles'
captions as to the large ones' (each image has one that says no more), so the prior picks both in
the data's proportion, and a caption that states the size is nearest to images of that size.
Measured without any GAN (the seed-0 encoder; for each of ``gankit eval``'s 1,080 held-out
captions, the prior's exact probability of picking an image that has what the caption states,
from the images' true attributes; scratch script): colour, shape and position 100.0 %,
background 99.9 %, size 98.6 %, all stated 98.8 %; the 54 open captions pick large 50 / 50 /
48 % of the time (circles / squares / triangles) and cover 5.0 of 5 positions. G then only has
to draw what θ says, and θ tells it every attribute (a linear probe on θ reads colour, shape,
size, background and position at 99.9-100 %). So G now picks a size instead of growing the
object with the embedding: ``python benchmarks/text2image_sizes.py RUN --n 10 --interpolate`` on
the seed-0 3,000-step run below gives circles of median area 0.081 / 0.086 / 0.091 / 0.241 /
0.266 at β = 0 / 0.4 / 0.5 / 0.6 / 0.8 between the small and large plain captions, 0 % in the
medium band (the text-conditioned G: 0.081 / 0.100 / 0.117 / 0.160 / 0.231, 36 % medium at β 0.6),
and open captions 54 / 45 / 52 % below the midpoint for circles / squares / triangles, 0-1 % medium.

What it gives up: it draws what some training image shows. A caption combining attributes that
no training image has gets the θ of the nearest ones (on ``shapes`` every combination is in the
data; on real photos the picture is a new drawing of a retrieved image's content, not a new
composition). And G all but ignores z given θ (without the mode-seeking term, below), so one
caption's samples are re-drawings of the images it retrieves. Measured on the seed-0 15-minute
check's export (500 training images' θ; scratch probe): two latents for one θ differ by 0.005
in mean absolute pixel value (images in [-1, 1]) against 0.93 for two images' θ, and the
attribute classifier reads the same five attributes for all 500 pairs; G(z, θ(x_i)) lies 0.027
from x_i itself (two real images: 0.87) and has its attributes (position 97.4 %, the rest
100 %), though it is x_i's nearest training image in pixels only 9 % of the time (images of the
same attributes a few pixels of jitter apart are nearer). Where samples must not be near copies
of training images, or must combine attributes in new ways, ``cond=text`` is the setting.

The mode-seeking term is off with it (``lambda_ms`` unset: 0 with ``cond=image``, 0.1 with
``text``). θ(x) fixes the image's layout; the term paid G for moving the object between two
latents of one θ, and D checks the position only when the drawn caption states it. With the term
(first trials, same code otherwise, 3,000 steps; then ``gankit eval``): stated position 0.769 /
0.764 (seeds 0 / 1), all stated 0.896 / 0.867, where the prior itself picks the stated position
100 % of the time (seed 0's encoder); τ = 0.003 left it at 0.764, and neither judging G's image against every caption
of its image (0.736) nor a consistency term 1 - cos(V(G(z, θ)), θ) through the frozen image side
(weight 1; 0.726) raised it. Without the term (``gankit train text2image --data shapes --steps 3000
--eval-every 1500 [--seed 1]``, each seed with its own encoder, then ``gankit eval RUN``):

    seed  shape  colour  size   stated position  all    area balance  large (c / s / t)  between  positions
    0     1.000  1.000   0.991  0.942            0.981  0.835         52 / 47 / 50 %      1 %     4.93
    1     0.994  0.997   0.978  1.000            0.970  0.866         48 / 51 / 49 %      1 %     4.98

(the trial code's seed-0 run, its latents laid out differently: shape 0.990, stated position
0.986, all 0.974, area balance 0.864).

Against the text-conditioned defaults at the same 3,000 steps (seed 1: shape 0.935, all 0.900,
area balance 0.172): every figure better, and the open captions' sizes split as the data's (0.87
being what sampling noise leaves at 40 samples). Already at 1,500 steps (training-time
evaluations, their captions drawn with the run's seed): shape 0.986 / 0.966, all 0.968 / 0.951,
area balance 0.84 / 0.86. In the 15-minute check (``benchmarks/text2image_shapes.py
[--seed 1]``, 2026-12-03 16:40-17:11 UTC, one after the other on idle cores; 8,772 / 8,611 GAN
steps at 739 / 731 img/s): colour 1.000 / 0.997, shape 1.000 / 0.996, stated position 0.976 /
1.000, all stated 0.987 / 0.973; open captions area balance 0.83 / 0.87 (large 52 / 47 / 50 % and
48 / 51 / 49 %), 0.2 / 0.1 % between the sizes, 4.96 / 4.98 positions. The text-conditioned
defaults on a machine as fast: shape 0.970 / 0.969, all 0.955 / 0.945, 0-4 % large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit import text
from gankit.errors import UsageError
from gankit.losses import (contrastive_match, d_bce, d_matching_aware, feature_layout, feature_occupancy, kl_normal,
                           mode_seeking, r1_penalty)
from gankit.models.dcgan import dcgan_init_
from gankit.models.text2image import MatchingDiscriminator, RetrievalPrior, TextToImageGenerator, normal_cdf
from gankit.recipes.base import Recipe, StepContext
from gankit.recipes.gan import validate_common
from gankit.recipes.text_encoder import caption_index, pick_caption


@dataclass
class TextGANSettings:
    """Settings text2image and StackGAN share: the minibatch, the matching-aware D and the text
    encoder (one default, so both recipes reuse one cached encoder)."""

    batch: int = 64
    wrong: Literal["random", "hard"] = "hard"  # the mismatched caption: another image's, or the most similar one below wrong_max_sim
    wrong_max_sim: float = 0.85  # wrong=hard: captions this cosine-similar to the image's (``describes``) may describe it; never wrong
    spectral_norm: bool = True  # spectral norm on D's layers (Miyato et al. 2018); D then has no BatchNorm
    projection: bool = True  # D adds <W φ(t), mean h> to its logit (projection discriminator, Miyato & Koyama 2018)
    lambda_con: float = 1.0  # D's image-text contrastive term on its projection codes (XMC-GAN); 0 = off
    lambda_con_g: float = 0.3  # G's: its images must be retrieved by their captions through D's codes
    tau: float = 0.1  # the contrastive softmax temperature (XMC-GAN's)
    con_max_sim: float = 0.75  # contrastive: caption-image pairs more similar than this are not negatives
    describes: Literal["image", "caption"] = "image"  # similarity of caption j to image i: to the nearest of its captions, or to the drawn one
    encoder: str = "auto"  # auto (train / reuse one for this data), minilm (pretrained, gankit[minilm]) or a text-encoder run/export path
    encoder_steps: int = 4000  # steps of the encoder trained by encoder=auto (at its lr 2e-3; see text_encoder)
    encoder_overrides: tuple[str, ...] = ()  # text-encoder settings for encoder=auto, e.g. emb_dim=128
    encoder_post: Literal["center", "whiten", "none"] = "center"  # encoder=minilm: fitted to the captions (gankit.text.fit_minilm)

    def validate_text(self) -> None:
        if not -1 < self.wrong_max_sim <= 1:
            raise UsageError(f"wrong_max_sim is a cosine similarity in (-1, 1], got {self.wrong_max_sim}")
        if not -1 < self.con_max_sim <= 1:
            raise UsageError(f"con_max_sim is a cosine similarity in (-1, 1], got {self.con_max_sim}")
        if self.batch < 2:
            raise UsageError("batch must be at least 2 (wrong captions come from other images of the batch)")
        if min(self.lambda_con, self.lambda_con_g) < 0 or not self.tau > 0:
            raise UsageError(f"lambda_con and lambda_con_g must be >= 0 and tau > 0, got {self.lambda_con}, "
                             f"{self.lambda_con_g} and {self.tau}")
        if (self.lambda_con or self.lambda_con_g) and not self.projection:
            raise UsageError("lambda_con and lambda_con_g compare D's projection codes: with projection=false set "
                             "both to 0")
        if getattr(self, "standing_stats", 0) < 0:
            raise UsageError(f"standing_stats must be 0 (off) or a number of batches, got {self.standing_stats}")
        if self.encoder_post != "center" and self.encoder != "minilm":
            raise UsageError(f"encoder_post={self.encoder_post} transforms the pretrained encoder's embeddings: it "
                             "needs encoder=minilm")
        for o in self.encoder_overrides:
            if o and "=" not in o:
                raise UsageError(f"bad encoder_overrides item {o!r} (expected key=value, comma-separated)")


@dataclass
class Text2ImageConfig(TextGANSettings):
    variant: Literal["gan", "cls", "int", "int_cls"] = "int_cls"
    z_dim: int = 100
    t_dim: int = 128  # compressed text embedding (the paper's 128)
    width: int = 32  # ngf: channels of G's last hidden layer, and D's first unless width_d is set
    width_d: int | None = None  # ndf; None: width (the authors' code: ngf 128, ndf 64; 16 measured, see the docstring)
    beta: float = 0.5  # GAN-INT interpolation weight
    lr: float = 1e-3  # the paper: 2e-4 (see the docstring)
    lr_d: float | None = None  # D's learning rate if not lr (two time-scale update rule, Heusel et al. 2017)
    betas: tuple[float, ...] = (0.5, 0.999)
    ema: bool = True
    ema_decay: float = 0.999
    lambda_ms: float | None = None  # mode-seeking term (MSGAN) weight; None: 0.1 with cond=text, 0 with cond=image
    ms_space: Literal["layout", "occupancy", "features", "pixels"] = "layout"  # mode-seeking distance: see ms_view
    ms_pairs: int = 16  # captions per step given a second latent for the mode-seeking term (at most batch)
    r1_gamma: float = 0.0  # R1 penalty γ/2·E‖∇_x D(x, t)‖² on real, matching pairs (Mescheder et al. 2018)
    size: int = 32  # image side (power of two >= 16); the paper uses 64
    standing_stats: int = 32  # batches re-estimating sampling G's BatchNorm statistics (gankit.engine.standing); 0 = off
    ca: bool = False  # G reads φ(t) through StackGAN's conditioning augmentation (t_dim components), not FC + LeakyReLU
    kl_weight: float = 1.0  # ca: λ on the per-component KL(N(μ, σ²) ‖ N(0, I)) (StackGAN's λ = 1)
    lambda_imle: float = 0.0  # conditional IMLE: the nearest of imle_m samples of a caption is pulled to its image
    imle_n: int = 16  # real images per step given the IMLE term (at most batch)
    imle_m: int = 8  # candidate latents per real image, searched without gradients
    # what G reads: φ(t), or θ(x) of a training image the caption picks (RetrievalPrior); auto: image unless minilm
    cond: Literal["auto", "text", "image"] = "auto"
    prior_tau: float = 0.01  # cond=image: the retrieval prior's softmax temperature on cosine similarities

    # What a run saved before ``cond`` existed trained (config.from_dict): G read the caption.
    absent_means: ClassVar[dict[str, Any]] = {"cond": "text"}

    @property
    def ms_weight(self) -> float:
        """``lambda_ms``, or its default: 0.1 when G reads the caption, 0 when it reads θ(x), which
        fixes the image's layout (the retrieval prior makes the variety; see the docstring)."""
        if self.lambda_ms is not None:
            return self.lambda_ms
        return 0.0 if self.image_cond else 0.1

    @property
    def image_cond(self) -> bool:
        """G reads θ(x): ``cond=image``, or ``auto`` with an encoder that has an image side (not minilm)."""
        return self.cond == "image" or (self.cond == "auto" and self.encoder != "minilm")

    def validate(self) -> None:
        validate_common(self, ("z_dim", "t_dim", "width", "batch", "encoder_steps"))
        self.validate_text()
        if self.lambda_ms is not None and self.lambda_ms < 0:
            raise UsageError(f"lambda_ms must be >= 0, got {self.lambda_ms}")
        if self.ms_pairs < 1:
            raise UsageError(f"ms_pairs must be >= 1 (captions given a second latent each step), got {self.ms_pairs}")
        if self.kl_weight < 0:
            raise UsageError(f"kl_weight must be >= 0, got {self.kl_weight}")
        if self.lambda_imle < 0 or self.imle_n < 1 or self.imle_m < 1:
            raise UsageError(f"lambda_imle must be >= 0 and imle_n, imle_m >= 1, got {self.lambda_imle}, "
                             f"{self.imle_n} and {self.imle_m}")
        if self.r1_gamma < 0:
            raise UsageError(f"r1_gamma must be >= 0, got {self.r1_gamma}")
        if self.size < 16 or self.size & (self.size - 1):
            raise UsageError(f"size must be a power of two >= 16 for text2image, got {self.size}")
        if not 0 <= self.beta <= 1:
            raise UsageError(f"beta must be in [0, 1], got {self.beta}")
        if not self.prior_tau > 0:
            raise UsageError(f"prior_tau must be > 0, got {self.prior_tau}")
        if self.cond == "image" and self.encoder == "minilm":
            raise UsageError("cond=image conditions G on the text encoder's image side; encoder=minilm has none "
                             "(use encoder=auto or a text-encoder run)")


def wrong_captions(right: Tensor, sim: Tensor, cfg: TextGANSettings) -> Tensor:
    """φ(t̂) (B, E) for the matching-aware D's (real image, wrong text) pairs: ``wrong=hard`` (by
    ``sim``, ``batch_similarity``) or, as in the paper, another image's caption (the minibatch
    rolled by one)."""
    return hard_wrong(right, sim, cfg.wrong_max_sim) if cfg.wrong == "hard" else right.roll(1, 0)


def ms_view(space: str, images: Tensor, h: Tensor) -> Tensor:
    """What the mode-seeking distance compares in ``space``, for ``images`` (N, C, S, S) with D's
    features ``h`` = D.image(images) (N, ch, 4, 4): ``pixels`` (MSGAN's), ``features`` (h, which
    still encodes where the object is but not pixel noise that D does not tell apart) or ``layout``
    (``gankit.losses.feature_layout`` of h: where D's features respond, not what they encode) or
    ``occupancy`` (``feature_occupancy``: where and how much, normalised over all N images)."""
    if space == "pixels":
        return images
    if space == "features":
        return h
    return {"layout": feature_layout, "occupancy": feature_occupancy}[space](h)


def mode_seeking_term(space: str, D: MatchingDiscriminator, fake: Tensor, fake2: Tensor, h_fake: Tensor, z: Tensor,
                      z2: Tensor) -> Tensor:
    """MSGAN's term for two latents of the same captions, its distance in ``space`` (``ms_view``;
    ``h_fake`` = D.image(fake))."""
    if space == "pixels":
        return mode_seeking(fake, fake2, z, z2)
    n = fake.shape[0]  # both images' views in one call: occupancy normalises over all of them
    v = ms_view(space, torch.cat([fake, fake2]), torch.cat([h_fake, D.image(fake2)]))
    return mode_seeking(v[:n], v[n:], z, z2)


def mode_seeking_pair(space: str, fake_all: Tensor, h_all: Tensor, z: Tensor, z2: Tensor) -> Tensor:
    """MSGAN's term when the second latents' images ride in the main batch: ``fake_all`` (B + n, C,
    S, S) holds G(z, t) for the B captions, then G(z2, t) for the first n of them; ``h_all`` is D's
    features of all of it. The distance is between rows i and B + i, in ``space`` (see
    ``mode_seeking_term``)."""
    n, B = z2.shape[0], z.shape[0]
    a = ms_view(space, fake_all, h_all)
    return mode_seeking(a[:n], a[B:B + n], z[:n], z2)


@torch.no_grad()
def nearest_latents(G: nn.Module, cand: Tensor, emb: Tensor, x: Tensor) -> Tensor:
    """Conditional IMLE's search (Li, Zhang & Malik 2019, arXiv:1811.12373): for each real image
    ``x[i]`` (n, C, S, S) and its caption ``emb[i]`` (n, E), the one of its m candidate latents
    ``cand[i*m : (i+1)*m]`` (n*m, latent) whose sample is nearest in pixels (squared distance).
    ``G`` stays in training mode, so its BatchNorm normalises the candidates with their own batch
    statistics (the chosen latent's image in the training pass differs by that much) and moves its
    running statistics, which sampling does not use when ``standing_stats`` re-estimates them."""
    n = x.shape[0]
    m = cand.shape[0] // n
    imgs = G(cand, emb.repeat_interleave(m, 0))  # (n*m, C, S, S)
    d = (imgs.reshape(n, m, -1) - x.reshape(n, 1, -1)).pow(2).sum(2)  # (n, m)
    return cand.view(n, m, -1)[torch.arange(n, device=x.device), d.argmin(1)]  # (n, latent)


def eval_record(res: dict[str, Any]) -> dict[str, Any]:
    """``caption_accuracy``'s result flattened for ``metrics.jsonl``: the accuracies (and protocol)
    plus the diversity figures as scalars."""
    res = dict(res)
    div = res.pop("diversity")
    return {**res, "positions_covered": div["positions_covered"], "sizes_covered": div["sizes_covered"],
            "open_positions": div["per_caption"]["positions_covered_mean"],
            "open_sizes": div["per_caption"]["sizes_covered_mean"],
            "open_size_balance": div["per_caption"]["size_balance_mean"],
            "open_size_balance_area": div["per_caption"]["size_balance_area"],
            "open_medium_area": div["per_caption"]["medium_share_area"]}


def caption_similarity(right: Tensor, captions: Tensor | None = None, n_caps: Tensor | None = None) -> Tensor:
    """(B, B): how close caption j (``right[j]``, (B, E)) comes to describing image i, as a cosine.

    With the images' own captions (``captions`` (B, K, E), ``n_caps`` (B,) of them valid; the
    ``describes=image`` rule) it is caption j's cosine to the *nearest* of image i's captions;
    without them, to the one caption drawn for image i (``describes=caption``, symmetric). One
    caption rarely says everything: "a red circle on black" leaves the size open, so it is close
    to "a small red circle on black" and to the large one, and whether the cosine to either passes
    a threshold depends on where the encoder happened to put them. The image's other captions
    (on ``shapes`` always one that states every attribute) catch what the drawn one leaves open.
    Entries >= a threshold mark pairs that may match: never a wrong caption or a contrastive
    negative. The diagonal is 1 (up to rounding).
    """
    r = F.normalize(right, dim=1)
    if captions is None:
        return r @ r.T
    sim = torch.einsum("bke,je->bkj", F.normalize(captions, dim=2), r)  # (B, K, B)
    valid = torch.arange(captions.shape[1], device=captions.device)[None, :] < n_caps[:, None]  # (B, K)
    return sim.masked_fill(~valid[:, :, None], -2.0).amax(1)  # image i's drawn caption is among its own


def batch_similarity(batch: dict[str, Tensor], right: Tensor, cfg: TextGANSettings) -> Tensor:
    """``caption_similarity`` for a training minibatch under ``cfg.describes``."""
    if cfg.describes == "image":
        return caption_similarity(right, batch["emb"], batch["n_caps"])
    return caption_similarity(right)


def hard_wrong(emb: Tensor, sim: Tensor, max_sim: float) -> Tensor:
    """For each image i, the caption ``emb[j]`` (j != i; ``emb`` (B, E)) with the highest
    ``sim[i, j]`` below ``max_sim`` (those above may describe image i); the next row if none is."""
    sim = sim.masked_fill(sim >= max_sim, -2.0).fill_diagonal_(-2.0)  # excluded: self and possible matches
    best = sim.argmax(1)  # (B,)
    fallback = torch.arange(1, emb.shape[0] + 1, device=emb.device) % emb.shape[0]
    return emb[torch.where(sim.max(1).values > -2.0, best, fallback)]


@dataclass
class TextInputs:
    """What G samples from: latents and caption codes, sliceable together."""

    z: Tensor  # (n, latent_dim): z, ε with ca, u with cond=image
    codes: Tensor  # (n, L): uint8 characters or int64 word pieces (gankit.text.tokenize)

    def __len__(self) -> int:
        return self.z.shape[0]

    def __getitem__(self, s: slice) -> TextInputs:
        return TextInputs(self.z[s], self.codes[s])


class Text2ImageRecipe(Recipe):
    name = "text2image"
    Config = Text2ImageConfig
    kinds = ("image",)
    default_data = "shapes"
    grid_nrow = 8  # sample grids: one example caption per row
    best_metric = ("all_acc", "max")  # --eval-every keeps the export whose images match captions best

    @classmethod
    def data_size(cls, cfg: Text2ImageConfig, native: int) -> int:
        return cfg.size

    @classmethod
    def prepare_data(cls, ds: Any, cfg: Text2ImageConfig, tcfg: Any) -> Any:
        """Attach the frozen text encoder and every caption's embedding to ``ds`` (trains the encoder if needed)."""
        if not ds.captions:
            raise UsageError(f"text2image needs captioned data (shapes, CUB, Oxford-102 or a folder with a .txt "
                             f"per image); {ds.name} has no captions")
        if tcfg.eval_every and ds.name != "shapes":
            raise UsageError(f"--eval-every scores text2image by caption accuracy on the built-in shapes; {ds.name} "
                             "has no attribute classifier (use gankit eval --metrics fid,kid --features inception)")
        T, arch, sha, source = text.encoder_for(cfg, tcfg, ds)
        emb, n = text.embed_captions(T, arch, sha, ds.captions)
        ds.aligned = {"emb": emb, "n_caps": n}
        ds.frozen = {"T": T.state_dict()}
        ds.info = {**ds.info, "text_encoder": {"arch": arch, "source": source, "sha256": sha}}
        if getattr(cfg, "image_cond", False):  # G's condition θ(x) per image, and the prior's table
            theta = text.embed_images(source, ds.x)  # (N, E)
            ds.aligned["theta"] = theta
            P = RetrievalPrior(*emb.shape, cfg.prior_tau)
            P.fill(theta, emb, n)
            ds.frozen["P"] = P.state_dict()
            ds.info["retrieval"] = {"images": emb.shape[0], "captions": emb.shape[1]}  # P's shape, for loading
        return ds

    def __init__(self, cfg: Text2ImageConfig, spec: Any) -> None:
        super().__init__(cfg, spec)
        if "text_encoder" not in spec.info:
            raise UsageError("text2image data carries no text encoder (load it through gankit.train.load_data)")
        self.arch = dict(spec.info["text_encoder"]["arch"])
        self.examples = list(spec.info.get("example_captions") or ["a caption"])

    @property
    def latent_dim(self) -> int:
        """Components of one latent: z, with ``ca`` the conditioning noise ε after it, and with
        ``cond=image`` last the prior's choice u (a normal component, its CDF uniform)."""
        return self.g_latent_dim + int(self.image_cond)

    @property
    def image_cond(self) -> bool:
        """G reads θ(x) picked by the retrieval prior (``Text2ImageConfig.image_cond``; StackGAN's config has none)."""
        return getattr(self.cfg, "image_cond", False)

    @property
    def g_latent_dim(self) -> int:
        """Components of G's own latent: z, and with ``ca`` ε."""
        return self.cfg.z_dim + (self.cfg.t_dim if self.cfg.ca else 0)

    def condition(self, modules: dict[str, Any], w: Tensor, emb: Tensor) -> tuple[Tensor, Tensor]:
        """(G's latent, G's condition) for latents ``w`` (n, latent_dim) and caption embeddings
        ``emb`` (n, E): ``w`` and φ(t) themselves, or with ``cond=image`` ``w`` without its last
        component u and the θ(x) the retrieval prior picks with Φ(u)."""
        if not self.image_cond:
            return w, emb
        return w[:, :-1], modules["P"](emb, normal_cdf(w[:, -1]))

    def build(self, device: torch.device) -> None:
        c = self.cfg
        C, H, _ = self.spec.shape
        E = self.arch["emb_dim"]
        G = TextToImageGenerator(c.z_dim, E, c.t_dim, C, H, c.width, ca=c.ca)
        D = self.matching_d(E, H, c.width if c.width_d is None else c.width_d)
        dcgan_init_(G)
        dcgan_init_(D)
        T = text.text_module(self.arch)  # weights: Dataset.frozen / the export
        self.modules = {"G": G.to(device), "D": D.to(device), "T": T.to(device)}
        if c.image_cond:  # the table: Dataset.frozen / the export
            r = self.spec.info["retrieval"]
            self.modules["P"] = RetrievalPrior(r["images"], r["captions"], E, c.prior_tau).to(device)
        self.optimizers = {
            "D": torch.optim.Adam(D.parameters(), lr=c.lr if c.lr_d is None else c.lr_d, betas=tuple(c.betas)),
            "G": torch.optim.Adam(G.parameters(), lr=c.lr, betas=tuple(c.betas)),
        }

    def matching_d(self, emb_dim: int, side: int, width: int) -> MatchingDiscriminator:
        """Reed's D at ``side`` px with this config's ``spectral_norm`` (then no BatchNorm) and ``projection``."""
        c = self.cfg
        return MatchingDiscriminator(emb_dim, c.t_dim, self.spec.shape[0], side, width,
                                     norm="none" if c.spectral_norm else "batch", spectral_norm=c.spectral_norm,
                                     projection=c.projection)

    def export_modules(self) -> tuple[str, ...]:
        return ("G", "T", "P") if self.image_cond else ("G", "T")

    def train_step(self, ctx: StepContext, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        c = self.cfg
        G, D = self.modules["G"], self.modules["D"]
        cls, interp = c.variant in ("cls", "int_cls"), c.variant in ("int", "int_cls")
        x = batch["x"]  # (B, C, S, S)
        B = x.shape[0]
        k = pick_caption(ctx, batch["n_caps"])
        right = batch["emb"][torch.arange(B, device=x.device), k]  # (B, E) φ(t) of each image's caption
        sim = batch_similarity(batch, right, c)  # (B, B) how near caption j comes to describing image i
        wrong = wrong_captions(right, sim, c)  # (B, E)
        # what G reads: the caption's φ(t), or with cond=image the image's own θ(x) (the prior picks one at sampling)
        cond = batch["theta"] if c.image_cond else right  # (B, E)
        z = ctx.randn(B, self.g_latent_dim)  # (B, z_dim [+ t_dim]): z, and ε with ca
        n_ms = min(c.ms_pairs, B) if c.ms_weight else 0
        n_im = min(c.imle_n, B) if c.lambda_imle else 0
        zs, ts = [z], [cond]
        if n_ms:  # mode seeking: a second latent for the first n_ms captions, in the same G pass
            z2 = ctx.randn(n_ms, self.g_latent_dim)
            zs.append(z2)
            ts.append(cond[:n_ms])
        if n_im:  # IMLE: the first n_im images' nearest sample under their caption, in the same G pass
            zs.append(nearest_latents(G, ctx.randn(n_im * c.imle_m, self.g_latent_dim), cond[:n_im], x[:n_im]))
            ts.append(cond[:n_im])
        fake_all = G(torch.cat(zs), torch.cat(ts)) if len(zs) > 1 else G(z, cond)  # (B + n_ms + n_im, C, S, S)
        fake = fake_all[:B]

        x_r = x.detach().requires_grad_(True) if c.r1_gamma else x
        h_r = D.image(x_r)  # (B, ch, 4, 4), shared by the right- and wrong-text scores
        s_r, s_f = D.score(h_r, right), D(fake.detach(), right)  # separate passes: BN sees pure batches
        if cls:
            s_w = D.score(h_r, wrong)
            loss_d = d_matching_aware(s_r, s_w, s_f)
        else:
            loss_d = d_bce(s_r, s_f)
        if c.r1_gamma:
            loss_d = loss_d + 0.5 * c.r1_gamma * r1_penalty(s_r, x_r)
        same = sim >= c.con_max_sim  # (B, B) pairs that may match: not contrastive negatives
        if c.lambda_con:  # every other caption of the batch is a negative, except possible matches
            loss_con_d = contrastive_match(*D.pair_codes(h_r, right), same, c.tau)
            loss_d = loss_d + c.lambda_con * loss_con_d
        ctx.optimize("D", loss_d)

        h_all = D.image(fake_all[:B + n_ms])  # (B + n_ms, ch, 4, 4): no BatchNorm in D by default, so one pass is exact
        h_f = h_all[:B]
        loss_g = F.softplus(-D.score(h_f, right)).mean()  # -log D(G(z, t), t)
        if c.lambda_con_g:
            loss_con_g = contrastive_match(*D.pair_codes(h_f, right), same, c.tau)
            loss_g = loss_g + c.lambda_con_g * loss_con_g
        if interp:  # B // 2 pairs (i, B-1-i): at β = ½ the other half of the batch would repeat them
            h = B // 2
            t_int = c.beta * right[:h] + (1 - c.beta) * right.flip(0)[:h]  # (h, E) between two captions
            g_int = c.beta * cond[:h] + (1 - c.beta) * cond.flip(0)[:h]  # (h, E): the same mix of G's conditions
            loss_g = loss_g + F.softplus(-D(G(ctx.randn(h, self.g_latent_dim), g_int), t_int)).mean()
        if n_ms:  # G must not ignore z: the two latents' images must differ
            loss_ms = mode_seeking_pair(c.ms_space, fake_all, h_all, z, z2)
            loss_g = loss_g + c.ms_weight * loss_ms
        if n_im:  # every real image must have a sample near it under its own caption
            loss_imle = (fake_all[B + n_ms:] - x[:n_im]).pow(2).mean()
            loss_g = loss_g + c.lambda_imle * loss_imle
        if c.ca:  # StackGAN's regulariser: the condition's distribution stays near N(0, I)
            loss_kl = kl_normal(*G.text.stats(cond)) / c.t_dim  # per component, as StackGAN's recipe
            loss_g = loss_g + c.kl_weight * loss_kl
        ctx.optimize("G", loss_g)

        logs = {"loss_D": loss_d.detach(), "loss_G": loss_g.detach(),
                "D_real": torch.sigmoid(s_r.detach()).mean(), "D_fake": torch.sigmoid(s_f.detach()).mean()}
        if cls:
            logs["D_wrong"] = torch.sigmoid(s_w.detach()).mean()
        if n_ms:
            logs["ms"] = loss_ms.detach()
        if n_im:
            logs["imle"] = loss_imle.detach()
        if c.ca:
            logs["kl"] = loss_kl.detach()
        if c.lambda_con:
            logs["con_D"] = loss_con_d.detach()
        if c.lambda_con_g:
            logs["con_G"] = loss_con_g.detach()
        return logs

    # -- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def standing_pass(self, modules: dict[str, Any], batch: dict[str, Tensor], generator: torch.Generator) -> None:
        """The sampled stage on one random training caption of each image and fresh latents, as in
        a training step, but never GAN-INT's interpolated embeddings (sampling does not see them)."""
        B = batch["n_caps"].shape[0]
        if self.image_cond:  # G's conditions as in training: the images' own θ(x)
            G = modules["G"]
            G(torch.randn(B, self.g_latent_dim, generator=generator).to(batch["theta"].device), batch["theta"])
            return
        k = caption_index(torch.rand(B, generator=generator), batch["n_caps"])  # (B,) on the data's device
        right = batch["emb"][torch.arange(B, device=k.device), k]  # (B, E)
        w = torch.randn(B, self.latent_dim, generator=generator)
        self.generate_from_embeddings(modules, w, right)

    def encode(self, captions: list[str], check: bool = True) -> Tensor:
        """Caption strings -> what T reads (``gankit.text.tokenize``: (n, L) character codes or word
        pieces); with ``check``, an empty or unreadable caption is refused."""
        return text.tokenize(self.modules["T"], self.arch, captions, check=check)

    def inputs_for(self, captions: list[str], z: Tensor) -> TextInputs:
        """Inputs pairing ``captions[i]`` with latent ``z[i]``."""
        return TextInputs(z, self.encode(captions))

    def sample_inputs(self, n: int, generator: torch.Generator) -> TextInputs:
        z = torch.randn(n, self.latent_dim, generator=generator)
        caps = [self.examples[(i // self.grid_nrow) % len(self.examples)] for i in range(n)]
        return TextInputs(z, self.encode(caps, check=False))

    @torch.no_grad()
    def generate(self, modules: dict[str, Any], inputs: TextInputs) -> Tensor:
        device = next(modules["G"].parameters()).device
        emb = modules["T"](inputs.codes.to(device))  # (n, E)
        return modules["G"](*self.condition(modules, inputs.z.to(device), emb))

    @torch.no_grad()
    def grid(self, modules: dict[str, Any], inputs: TextInputs) -> tuple[Tensor, int | None]:
        return self.generate(modules, inputs), self.grid_nrow

    def evaluate(self, modules: dict[str, Any], data: Any, n: int, seed: int) -> dict[str, Any] | None:
        """``--eval-every`` on shapes: per-attribute accuracy for held-out-template captions and how
        many positions / sizes one open caption covers (``gankit.metrics.attributes``). ``n``
        (``eval_n``) does not apply: the caption set is fixed, so figures compare across runs."""
        from gankit.metrics.attributes import caption_accuracy

        return eval_record(caption_accuracy(self, modules, seed=seed))

    @torch.no_grad()
    def generate_from_embeddings(self, modules: dict[str, Any], z: Tensor, emb: Tensor) -> Tensor:
        """G(z, φ) for given embeddings (interpolations between captions)."""
        device = next(modules["G"].parameters()).device
        return modules["G"](*self.condition(modules, z.to(device), emb.to(device)))

    @torch.no_grad()
    def embed(self, modules: dict[str, Any], captions: list[str]) -> Tensor:
        T = modules["T"]
        return T(self.encode(captions).to(next(T.parameters()).device))
