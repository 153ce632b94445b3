// Umbrella header of the trainer: model graphs, the op backend, models, losses, optimizers,
// schedules, data, the training loop and checkpoints.
#pragma once

#include "trainer/backend.hpp"
#include "trainer/checkpoint.hpp"
#include "trainer/data.hpp"
#include "trainer/graph.hpp"
#include "trainer/loss.hpp"
#include "trainer/model.hpp"
#include "trainer/optim.hpp"
#include "trainer/safetensors.hpp"
#include "trainer/schedule.hpp"
#include "trainer/train.hpp"
