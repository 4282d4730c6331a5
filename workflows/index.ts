export { retrainPipeline, progressQuery } from './retrain';
export { promoteModel, rollbackModel } from './aliases';
