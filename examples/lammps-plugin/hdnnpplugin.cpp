// Registers n2p2's PairHDNNP (interface/LAMMPS/src/ML-HDNNP/pair_hdnnp.cpp of n2p2, compiled
// alongside) as the LAMMPS plugin style "pair hdnnp". Built by build-plugin.sh.
#include "lammpsplugin.h"
#include "pair_hdnnp.h"

using namespace LAMMPS_NS;

static Pair *hdnnp_creator(LAMMPS *lmp) { return new PairHDNNP(lmp); }

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "hdnnp";
  plugin.info = "n2p2 high-dimensional neural network potential (pair_style hdnnp) as a plugin";
  plugin.author = "n2p2 authors (pair style); hdnnp (plugin wrapper)";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &hdnnp_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
