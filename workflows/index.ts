export { retrainPipeline, progressQuery } from './retrain';
